"""InvokeEndpoint served at the protocol level, without ASGI, for the common request.

At 32 connections the gateway shares two cores with wrk and the instance, so its CPU per
request sets the throughput. Under uvicorn every request builds an ASGI scope (with a copy
of the app state), a `RequestResponseCycle` with an `asyncio.Event`, message dicts for
the body and for the two halves of the answer, a regex check of every answer header, and
goes through the guard's classification and the dispatcher's path tests before the
runtime API sees it (py-spy split: docs/performance.md).

`FastInvokeProtocol` recognises a plain `POST /endpoints/{name}/invocations` when its head
is complete, keeps its body as bytes, and hands it to `FastInvoke`, which runs the same
guard (when authentication is on), the same checks and the same data plane as the ASGI
path, and writes the answer in one piece. Everything else, and every request that is not
plain (a query string, a percent sign, `Expect: 100-continue`, an upgrade, a chunked body,
proxy headers, `X-Amz-Target`, a pipelined request while another is being answered,
limits exceeded, a serverless endpoint forwarded to the leader), takes uvicorn's ASGI
path unchanged, where the guard and the dispatcher decide as before. The head-size cap
and the head and body deadlines of `http_limits.py` sit above this class and apply to
both paths.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from modelhost.fleet.dataplane.shadow import ShadowJob
from modelhost.gateway.asgi import Message, Receive
from modelhost.gateway.auth.guard import Guard
from modelhost.gateway.cloudwatch_api import PATH_PREFIX as CLOUDWATCH_PATH
from modelhost.gateway.errors import error_payload
from modelhost.gateway.http_limits import BoundedHttpToolsProtocol
from modelhost.gateway.request_ids import request_id
from modelhost.gateway.runtime_api import RuntimeAPI, checked_headers, parse_invocation_path
from modelhost.gateway.uvicorn_internals import HEADER_VALUE_RE, STATUS_LINE, HttpToolsProtocol
from modelhost.routing.table import TargetMode
from modelhost.settings import Settings

log = logging.getLogger("modelhost.gateway")

Headers = list[tuple[bytes, bytes]]
# Requests Gateway.dispatch sends elsewhere even when `/endpoints/` is in their path.
_OTHER_PREFIXES = (b"/api/", b"/predictions", b"/v2", CLOUDWATCH_PATH.encode())
# Headers that send a request down the ASGI path: another API (X-Amz-Target), what
# uvicorn's proxy-headers middleware rewrites the scope from, and bodies we do not buffer.
_NOT_PLAIN = frozenset(
    {
        b"x-amz-target",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"forwarded",
        b"transfer-encoding",
    }
)


# What `FastInvoke.driven` runs without a Task.
_DRIVEN_MODES = frozenset({TargetMode.SINGLE_MODEL, TargetMode.MULTI_MODEL})


class FastInvoke:
    """The gateway's side of the fast path: which requests qualify, and their answer."""

    def __init__(
        self,
        settings: Settings,
        runtime: RuntimeAPI,
        guard: Guard,
        leader_serving: Callable[[str], str | None],
    ) -> None:
        self.runtime = runtime
        self.guard = guard
        self.leader_serving = leader_serving
        self.authenticate = guard.keys is not None
        self.max_header_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        self.max_payload_bytes = settings.max_payload_bytes

    def match(self, url: bytes, headers: Headers) -> str | None:
        """The endpoint's name when the request is a plain InvokeEndpoint (see the module
        docstring), else None: the ASGI path serves it."""
        if url[:1] != b"/" or b"?" in url or b"%" in url or b"#" in url:
            return None
        if url.startswith(_OTHER_PREFIXES):
            return None
        parsed = parse_invocation_path(url)
        if parsed is None or parsed[1] != "invocations":
            return None
        if len(headers) > self.max_headers:
            return None
        size = 0
        length = None
        for key, value in headers:
            size += len(key) + len(value) + 4
            if key in _NOT_PLAIN:
                return None
            if key == b"content-length":
                length = value
        if size > self.max_header_bytes:
            return None
        if length is None or not length.isdigit() or int(length) > self.max_payload_bytes:
            return None
        endpoint = parsed[0]
        if self.leader_serving(endpoint) is not None:
            return None
        return endpoint

    async def __call__(
        self, request: FastRequest, body: bytes, scheme: str, client: Any
    ) -> tuple[int, Headers, bytes, list[ShadowJob]]:
        """(status, headers, body, shadow copies to start once the answer is sent)."""
        shadow_jobs: list[ShadowJob] = []
        rid = request_id()
        try:
            if self.authenticate:
                await self.guard.check(_scope(request, scheme, client), _receive(body))
            runtime = self.runtime
            started = time.perf_counter()
            name, raw_headers = request.name, request.headers
            headers = checked_headers(name, raw_headers, runtime.is_async, self.max_payload_bytes)
            status, out_headers, out = await runtime.invoke_read(
                name, raw_headers, headers, body, started, rid, shadow_jobs
            )
        except Exception as exc:
            status, out_headers, out = error_payload(exc, rid, "application/json")
        return status, out_headers, out, shadow_jobs

    def driven(self, name: str) -> bool:
        """Whether the request can run without a Task (`_drive`): the endpoint serves
        single models or multi-model on running instances, whose paths await only
        futures (the hop's; a shared model load's, through `asyncio.shield`). Serverless
        and pipelines may use what needs a current task."""
        route = self.runtime.plane.routes.table.endpoints.get(name)
        if route is None:
            return True  # answered at once (unknown endpoint)
        for variant in route.variants:
            if variant.serverless:
                return False
            instances = variant.instances
            if instances and instances[0].mode not in _DRIVEN_MODES:
                return False
        return True

    def start_shadows(self, jobs: list[ShadowJob]) -> None:
        for job in jobs:
            self.runtime.plane.shadows.start(job)


def _scope(request: FastRequest, scheme: str, client: Any) -> dict[str, Any]:
    """The scope the guard reads (method, path, query, headers, client, scheme)."""
    return {
        "type": "http",
        "method": "POST",
        "path": request.url.decode("latin-1"),
        "raw_path": request.url,
        "query_string": b"",
        "headers": request.headers,
        "client": client,
        "scheme": scheme,
    }


def _receive(body: bytes) -> Receive:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class _NoEvent:
    """uvicorn sets its cycle's `message_event` when the connection is lost."""

    __slots__ = ()

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()


class FastRequest:
    """One fast-path request; it stands in for uvicorn's `RequestResponseCycle` as the
    protocol's `cycle` while it is served (uvicorn and http_limits.py read these fields:
    a pipelined request waits for `response_complete`, a lost connection sets
    `disconnected`, a shutdown clears `keep_alive`)."""

    __slots__ = (
        "body",
        "disconnected",
        "headers",
        "keep_alive",
        "name",
        "response_complete",
        "response_started",
        "url",
    )
    message_event = _NO_EVENT

    def __init__(self, name: str, url: bytes, headers: Headers, keep_alive: bool) -> None:
        self.name = name
        self.url = url
        self.headers = headers
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.disconnected = False
        self.response_started = False
        self.response_complete = False


class FastInvokeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with InvokeEndpoint served by `fast` (module
    docstring). The scope of an ASGI request is built once its head is complete (uvicorn
    builds it when the message begins), so a fast request never builds one."""

    fast: FastInvoke | None = None
    _fast: FastRequest | None = None

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._fast = None

    def on_headers_complete(self) -> None:
        if self._take_fast():
            return
        self.scope = {  # what uvicorn's on_message_begin builds
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        super().on_headers_complete()

    def _take_fast(self) -> bool:
        fast = self.fast
        if fast is None or self.expect_100_continue or self.root_path:
            return False
        parser = self.parser
        if parser.get_method() != b"POST" or parser.should_upgrade():
            return False
        cycle = self.cycle
        if (cycle is not None and not cycle.response_complete) or self.pipeline:
            return False  # pipelined behind another request: uvicorn queues it in order
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            return False  # uvicorn answers 503
        name = fast.match(self.url, self.headers)
        if name is None:
            return False
        keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        request = FastRequest(name, self.url, self.headers, keep_alive)
        self._fast = request
        self.cycle = request  # type: ignore[assignment]
        return True

    def on_body(self, body: bytes) -> None:
        request = self._fast
        if request is None:
            super().on_body(body)
        else:
            request.body.append(body)

    def on_message_complete(self) -> None:
        request = self._fast
        if request is None:
            super().on_message_complete()
            return
        self._fast = None
        chunks = request.body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        assert self.fast is not None
        if self.fast.driven(request.name):
            _drive(self._serve(request, body))
            return
        task = self.loop.create_task(self._serve(request, body))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _serve(self, request: FastRequest, body: bytes) -> None:
        assert self.fast is not None
        try:
            status, headers, out, shadows = await self.fast(
                request, body, self.scheme or "http", self.client
            )
            if self.flow.write_paused and not request.disconnected:
                await self.flow.drain()
            if not request.disconnected:
                self._answer(request, status, headers, out)
        except asyncio.CancelledError:
            self.transport.close()  # the server is stopping
            raise
        except Exception as exc:  # as uvicorn does for an ASGI app that fails mid-answer
            log.error("Exception in the InvokeEndpoint fast path", exc_info=exc)
            self.transport.close()
            return
        # The production answer is sent; the shadow copies start only now.
        self.fast.start_shadows(shadows)

    def _answer(self, request: FastRequest, status: int, headers: Headers, body: bytes) -> None:
        """The answer in one write, as uvicorn's `send` would frame it."""
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += (name, b": ", value, b"\r\n")
        for name, value in headers:
            content += (name, b": ", value, b"\r\n")
        # What uvicorn refuses in a header value (an instance's Content-Type or custom
        # attributes could carry it); one search over all the values.
        if HEADER_VALUE_RE.search(b"".join([value for _, value in headers])):
            raise RuntimeError("Invalid HTTP header value.")
        if not request.keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        request.response_started = True
        self.transport.write(b"".join(content))
        request.response_complete = True
        if not request.keep_alive:
            self.transport.close()
        self.on_response_complete()


def _drive(coro: Coroutine[Any, Any, None], _done: object = None) -> None:
    """Run `coro` to its end without a Task: step it, and step it again when the future it
    waits on is done (what Task does, without the Task: its creation, its registration in
    asyncio's set of all tasks and its scheduled first step cost several µs a request).
    Only for coroutines that await futures and nothing that needs a current task
    (`FastInvoke.driven`); `_serve` catches its own errors."""
    try:
        future = coro.send(None)
    except StopIteration:
        return
    except BaseException as exc:  # a cancelled future inside: the request is abandoned
        log.warning("InvokeEndpoint fast path ended by %r", exc)
        return
    if future is None:  # a bare yield (sleep(0)): go on at the next turn
        asyncio.get_running_loop().call_soon(_drive, coro)
        return
    future._asyncio_future_blocking = False
    future.add_done_callback(partial(_drive, coro))


def gateway_protocol(
    fast: FastInvoke | None,
    max_head_bytes: int,
    header_timeout_s: float = 10.0,
    body_timeout_s: float = 60.0,
) -> type[asyncio.Protocol]:
    """The gateway's protocol class for `uvicorn.run(http=...)`: the limits of
    http_limits.py over the fast path (None: every request takes the ASGI path)."""
    return type(
        "GatewayHttpToolsProtocol",
        (BoundedHttpToolsProtocol, FastInvokeProtocol),
        {
            "fast": fast,
            "max_head_bytes": max_head_bytes,
            "header_timeout_s": header_timeout_s,
            "body_timeout_s": body_timeout_s,
        },
    )
