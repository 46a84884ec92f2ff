"""Each instance's own account of itself: `GET /modelhost/stats` (container/instance_stats.py),
polled on the gateway's instance-sampling loop (`instance_sample_interval_s`).

Shown as Prometheus metrics (telemetry/instance_stats_metrics.py), in the native describe
`GET /api/endpoints/{name}` (`Instances`) and in the dashboard's endpoint detail. A server
of the user's own (BYOC, or anything else at the contract's address) that does not answer
200 with a JSON object is not asked again for the life of that instance; an instance that
does not answer in `ping_timeout_s` keeps its last reading until the next round.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelhost.fleet.dataplane.core import json_object
from modelhost.fleet.http1 import InstanceDisconnected, InstanceUnreachable
from modelhost.telemetry.instance_stats_metrics import InstanceStatsRow

if TYPE_CHECKING:
    from modelhost.control.controller import Controller
    from modelhost.routing.table import ShadowRoute, Target, VariantRoute
    from modelhost.telemetry.metrics import InvocationMetrics

log = logging.getLogger("modelhost.gateway")

STATS_PATH = b"/modelhost/stats"


@dataclass(frozen=True)
class Reading:
    """One instance's last answer."""

    endpoint: str
    variant: str
    instance_id: str
    doc: dict[str, Any]


class InstanceStats:
    """The last `GET /modelhost/stats` of every serving (and shadow) instance."""

    def __init__(
        self, controller: Controller, timeout_s: float, metrics: InvocationMetrics | None = None
    ) -> None:
        self.controller = controller
        self.timeout_s = timeout_s
        self.latest: dict[str, Reading] = {}
        self._unsupported: set[str] = set()  # instance ids whose server does not answer it
        if metrics is not None:  # Prometheus reads the last readings at scrape time
            metrics.instance_stats.rows = self.rows

    def _targets(self) -> list[tuple[str, str, Target]]:
        out: list[tuple[str, str, Target]] = []
        for route in self.controller.table.endpoints.values():
            variants: list[VariantRoute | ShadowRoute] = [*route.variants, *route.shadows]
            for v in variants:
                out.extend((route.name, v.name, inst) for inst in v.instances)
        return out

    async def poll(self) -> int:
        """Ask every instance once, concurrently; returns how many answered."""
        targets = self._targets()
        found = await asyncio.gather(*(self._one(*t) for t in targets), return_exceptions=True)
        for failure in (f for f in found if isinstance(f, BaseException)):
            log.warning("reading an instance's stats failed: %r", failure)
        self.latest = {r.instance_id: r for r in found if isinstance(r, Reading)}
        self._unsupported &= {t[2].instance_id for t in targets}  # forget the gone
        return len(self.latest)

    async def _one(self, endpoint: str, variant: str, inst: Target) -> Reading | None:
        instance_id = inst.instance_id
        if instance_id in self._unsupported:
            return None
        try:
            status, _h, body = await self.controller.client.http.request(
                inst.address, b"GET", STATS_PATH, [], b"", self.timeout_s
            )
        except (InstanceUnreachable, InstanceDisconnected, TimeoutError, OSError):
            return self.latest.get(instance_id)  # busy or restarting: the last reading
        doc = json_object(body) if status == 200 else {}
        if "compiledModels" not in doc:
            self._unsupported.add(instance_id)
            log.debug("instance %s does not answer %s", instance_id, STATS_PATH.decode())
            return None
        return Reading(endpoint, variant, instance_id, doc)

    def rows(self) -> list[InstanceStatsRow]:
        """The Prometheus collector's rows."""
        out = []
        for r in self.latest.values():
            batching = r.doc.get("batching") or {}
            counts = r.doc.get("compiledModels") or {}
            out.append(
                InstanceStatsRow(
                    r.endpoint,
                    r.variant,
                    r.instance_id,
                    batches=_int(batching.get("batches")) if batching else None,
                    batched_rows=_int(batching.get("batchedRows")),
                    alone=_int(batching.get("alone")),
                    compiled_models={str(k): _int(v) for k, v in counts.items()},
                )
            )
        return out

    def describe(self, endpoint: str) -> list[dict[str, Any]]:
        """`Instances` of the native describe and the dashboard: one entry per instance
        of `endpoint` that reported."""
        out = []
        for r in sorted(self.latest.values(), key=lambda r: (r.variant, r.instance_id)):
            if r.endpoint != endpoint:
                continue
            entry: dict[str, Any] = {
                "InstanceId": r.instance_id,
                "VariantName": r.variant,
                "Batching": r.doc.get("batching"),
                "CompiledModels": r.doc.get("compiledModels"),
            }
            if "compiledTier" in r.doc:  # single-model instances
                entry["CompiledTier"] = r.doc["compiledTier"]
            if "compileFailures" in r.doc:  # multi-model: the models the tier failed on
                entry["CompileFailures"] = r.doc["compileFailures"]
            out.append(entry)
        return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
