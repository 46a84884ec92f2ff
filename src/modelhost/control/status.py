"""The one place that writes endpoint records: status, failure reason, updates, events.

Reconcilers read endpoints as typed values (`load`) and change them only through
`StatusWriter.update`, which re-reads the record, applies the change to the typed
endpoint and saves it in the stored format. A record that is gone, or being deleted,
is left alone (a delete overtakes whatever transition was running).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from modelhost.resources.endpoints import DeploymentStage, Endpoint, EndpointEvent
from modelhost.resources.status import EndpointStatus
from modelhost.store.metadata import Fence, Kind, MetadataStore, Record

MAX_REASON = 1024
EVENT_HISTORY_MAX = 100


def clip(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def endpoint_of(rec: Record) -> Endpoint:
    return Endpoint.from_spec(rec.name, rec.spec, rec.status, rec.failure_reason)


class _Skip(Exception):
    """Aborts an update's transaction: nothing to write."""


class StatusWriter:
    """Reads and writes endpoint records; `on_status` hears every `set_status` (the
    controller republishes the endpoint's route). `clock` stamps LastModifiedTime.
    `fence` (the leader's, with several gateways) guards the controller's writes."""

    def __init__(
        self,
        store: MetadataStore,
        clock: Callable[[], float] = time.time,
        on_status: Callable[[Endpoint], None] = lambda _endpoint: None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.on_status = on_status
        self.fence: Fence | None = None

    def load(self) -> dict[str, Endpoint]:
        return {r.name: endpoint_of(r) for r in self.store.list(Kind.ENDPOINT)}

    def get(self, name: str) -> Endpoint | None:
        rec = self.store.get(Kind.ENDPOINT, name)
        return None if rec is None else endpoint_of(rec)

    def exists(self, name: str) -> bool:
        return self.store.get(Kind.ENDPOINT, name) is not None

    def update(
        self,
        name: str,
        change: Callable[[Endpoint], None],
        *,
        deleting: bool = False,
        touch: bool = True,
        fenced: bool = True,
    ) -> Endpoint | None:
        """Apply `change` to the stored endpoint and save it, under the record's row lock
        (so an API call through another gateway is never lost); None (nothing written)
        when the endpoint is gone or, unless `deleting`, being deleted. `touch` stamps
        LastModifiedTime. `fenced`: the controller's write, refused (`FencedOut`) once
        this gateway no longer leads; API calls, which any gateway serves, pass False."""
        changed: list[Endpoint] = []

        def apply(rec: Record) -> None:
            if rec.status == EndpointStatus.DELETING and not deleting:
                raise _Skip
            endpoint = endpoint_of(rec)
            change(endpoint)
            rec.spec = endpoint.to_spec()
            rec.status = endpoint.status
            rec.failure_reason = clip(endpoint.failure_reason)
            if touch:
                rec.modified_s = self.clock()
            changed.append(endpoint)

        try:
            self.store.update(Kind.ENDPOINT, name, apply, self.fence if fenced else None)
        except _Skip:
            return None
        return changed[0] if changed else None

    def set_status(self, name: str, status: EndpointStatus, reason: str | None) -> None:
        def change(endpoint: Endpoint) -> None:
            endpoint.status = status
            endpoint.failure_reason = reason or None

        endpoint = self.update(name, change)
        if endpoint is not None:
            self.on_status(endpoint)

    def abandon_update(self, name: str, reason: str) -> Endpoint | None:
        """The pending config update is dropped: InService on the current config, why."""

        def change(endpoint: Endpoint) -> None:
            endpoint.pending = None
            endpoint.status = EndpointStatus.IN_SERVICE
            endpoint.failure_reason = reason

        return self.update(name, change)

    def event(self, name: str, status: str, message: str) -> None:
        """Append to the endpoint's event history (and set its pending update's stage)."""
        now = self.clock()

        def change(endpoint: Endpoint) -> None:
            endpoint.events.append(EndpointEvent(now, status, message))
            del endpoint.events[:-EVENT_HISTORY_MAX]
            if endpoint.pending is not None:
                endpoint.pending.stage = DeploymentStage(status, message, now)

        self.update(name, change, deleting=True, touch=False)

    def delete(self, name: str) -> None:
        self.store.delete(Kind.ENDPOINT, name, self.fence)
