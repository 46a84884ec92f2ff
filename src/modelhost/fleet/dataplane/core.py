"""The invocation core: pick an instance, send, retry what never reached it, map failures.

Every endpoint kind (and batch transform) sends through `Invoker.run`, so retries and
error mapping exist once:

- `InstanceUnreachable` (the connection could not be made): the request never reached
  the instance, so it is safe to send elsewhere; the instance is reported to the health
  sink and another one is picked, until none is left (ServiceUnavailable).
- `InstanceDisconnected` (the connection broke mid-request): after the answer had
  started, on a live instance, the model broke it off (a stream failing midway): a
  ModelError (500). Before it, if the instance is alive,
  most likely an idle keep-alive connection was closed under us before the request was
  read, so one more attempt is safe; otherwise the instance is reported and the caller
  gets ServiceUnavailable (the request may have run: never silently resent).
- `TimeoutError`: ModelError with SageMaker's "timed out" message and status 0.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from modelhost.errors import ModelError, ServiceUnavailable
from modelhost.fleet.dataplane.ports import InstanceHealth, InstanceTransport, Rand
from modelhost.fleet.http1 import InstanceDisconnected, InstanceUnreachable
from modelhost.fleet.instance import Instance
from modelhost.routing.table import Target

T = TypeVar("T")
Headers = list[tuple[bytes, bytes]]
Reply = tuple[int, dict[bytes, bytes], bytes]
Pick = Callable[[frozenset[str]], Target | None]
"""The next instance to try, given the ids already tried (None: nothing left)."""
Attempt = Callable[[Instance], Awaitable[T]]

MAX_ORIGINAL_MESSAGE = 4096
NOTHING_TRIED: frozenset[str] = frozenset()


@dataclass(slots=True)
class Sent:
    """An invocation's answer, the instance that gave it and the time spent in it
    (ModelLatency). `container` names who answered in error messages ("primary", or a
    pipeline's host name) and `log_path` its log."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes
    instance: Instance
    model_us: float
    container: str = "primary"
    log_path: Path | None = None


class Retry:
    """A retry loop's one-time allowance: a broken keep-alive connection to a live
    instance is resent once."""

    __slots__ = ("stale",)

    def __init__(self) -> None:
        self.stale = True


class Invoker:
    """Sends invocations to instances over the keep-alive pool (see the module docstring).

    `log_stream(endpoint, log_path)` is the LogStreamArn a ModelError carries: the stream
    of the instance (or container) that answered, whose log file is `log_path` (None when
    no instance is known: the endpoint's log group)."""

    def __init__(
        self,
        http: InstanceTransport,
        health: InstanceHealth,
        rand: Rand,
        timeout_s: float,
        log_stream: Callable[[str, Path | None], str],
    ) -> None:
        self.http = http
        self.health = health
        self.rand = rand
        self.timeout_s = timeout_s
        self.log_stream = log_stream

    def post(
        self,
        instance: Instance,
        path: bytes,
        headers: Headers,
        body: bytes,
        timeout_s: float | None = None,
    ) -> Awaitable[Reply]:
        """One request to one instance; raises what `HTTP1Pool.request` raises."""
        return self.http.request(
            instance.address, b"POST", path, headers, body, timeout_s or self.timeout_s
        )

    async def run(
        self,
        endpoint: str,
        variant: str,
        pick: Pick,
        attempt: Attempt[T],
        tried: set[str] | None = None,
        retry: Retry | None = None,
    ) -> T:
        """`attempt(instance)` on the instance `pick` chooses, counted in its
        `outstanding`; retried on another instance while none was reached. `tried` and
        `retry` carry on from a caller's own first attempt (`recover` decided on it)."""
        tried = set() if tried is None else tried
        retry = Retry() if retry is None else retry
        while True:
            target = pick(frozenset(tried) if tried else NOTHING_TRIED)
            if target is None:
                raise self.none_reached(endpoint, variant)
            instance = cast(Instance, target)
            tried.add(instance.instance_id)
            instance.outstanding += 1
            try:
                return await attempt(instance)
            except (InstanceUnreachable, InstanceDisconnected, TimeoutError) as exc:
                self.recover(endpoint, variant, instance, exc, tried, retry)
            finally:
                instance.outstanding -= 1

    def recover(
        self,
        endpoint: str,
        variant: str,
        instance: Instance,
        exc: InstanceUnreachable | InstanceDisconnected | TimeoutError,
        tried: set[str],
        retry: Retry,
    ) -> None:
        """Decide after a failed send to `instance` (see the module docstring): return to
        try again (`tried` updated), or raise the caller's error. Every invoker's retry
        loop calls this, so the rules exist once."""
        if isinstance(exc, InstanceUnreachable):
            self.health.report_unreachable(endpoint, instance)
            return
        if isinstance(exc, InstanceDisconnected):
            if exc.answered and self.health.is_alive(instance):
                # The model started answering, then broke off (a stream failing midway):
                # it ran, so it is the model's error, and never resent.
                raise self.model_error(
                    endpoint,
                    500,
                    b"The model broke off its answer midway",
                    "primary",
                    instance.log_path,
                ) from exc
            if not (retry.stale and self.health.is_alive(instance)):
                self.health.report_unreachable(endpoint, instance)
                raise ServiceUnavailable(
                    f"Instance {instance.instance_id} of variant {variant} stopped "
                    f"while serving the request ({type(exc).__name__}); retry it."
                ) from exc
            retry.stale = False
            tried.discard(instance.instance_id)  # the retry may pick it again
            return
        raise self.timed_out(endpoint, "primary", instance.log_path) from exc

    def none_reached(self, endpoint: str, variant: str) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"No instance of variant {variant} of endpoint {endpoint} could be "
            "reached; retry shortly."
        )

    def timed_out(self, endpoint: str, container: str, log_path: Path | None) -> ModelError:
        return ModelError(
            f'Received server error (0) from {container} with message "Your invocation '
            f'timed out while waiting for a response from container {container}."',
            0,
            f"Invocation timed out after {self.timeout_s:g} s",
            self.log_stream(endpoint, log_path),
        )

    def model_error(
        self, endpoint: str, status: int, body: bytes, container: str, log_path: Path | None
    ) -> ModelError:
        """The ModelError for a container's 4xx/5xx answer, quoting its message."""
        message = body[:MAX_ORIGINAL_MESSAGE].decode("utf-8", "replace")
        kind = "client" if status < 500 else "server"
        return ModelError(
            f'Received {kind} error ({status}) from {container} with message "{message}". '
            f"See {log_path} for more information.",
            status,
            message,
            self.log_stream(endpoint, log_path),
        )

    def too_large(
        self, endpoint: str, status: int, size: int, limit: int, log_path: Path | None
    ) -> ModelError:
        return ModelError(
            f"The model's response of {size} bytes exceeds the {limit}-byte limit.",
            status,
            "response too large",
            self.log_stream(endpoint, log_path),
        )


def json_object(body: bytes) -> dict[str, Any]:
    """An instance's JSON object answer, or {} for anything else."""
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
