"""What the InvokeEndpoint fast path (gateway/fastpath.py) takes from uvicorn's internals,
and the start-up check that they are there.

The fast path is a subclass of uvicorn's `HttpToolsProtocol`
(`uvicorn.protocols.http.httptools_impl`) that stands in for its `RequestResponseCycle`:
it overrides and calls the protocol's parser callbacks, reads and sets its per-connection
and per-request attributes, and frames answers with the module's `STATUS_LINE` and
`HEADER_VALUE_RE`. None of that is uvicorn's public API, so uvicorn is pinned in
constraints.txt (the version the fast path was written, tested and measured against) and,
for any other version, `fast_path_usable` checks once at start-up that every name below is
there with the expected shape. When one is not, the gateway logs one WARNING naming the
uvicorn version and what is missing, and serves every request through the ASGI path, as
with `http_fast_path = false`. Nothing here runs per request.

A change to fastpath.py that uses another uvicorn internal adds it to the lists below.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

import httptools
from uvicorn.protocols.http import httptools_impl
from uvicorn.server import ServerState

__all__ = [
    "HEADER_VALUE_RE",
    "STATUS_LINE",
    "HttpToolsProtocol",
    "fast_path_usable",
    "missing_internals",
]

log = logging.getLogger("modelhost.gateway")

HttpToolsProtocol = httptools_impl.HttpToolsProtocol
# The fast path frames its answers with these. Stand-ins keep fastpath.py importable when
# a uvicorn lacks them; the check below then turns the fast path off, so they never serve.
STATUS_LINE: Mapping[int, bytes] = getattr(httptools_impl, "STATUS_LINE", {})
HEADER_VALUE_RE: re.Pattern[bytes] = getattr(
    httptools_impl, "HEADER_VALUE_RE", re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
)

# Protocol methods the fast path overrides and calls through `super()`, or calls itself
# (on_url and on_header fill `url`, `headers` and `expect_100_continue` for it).
PROTOCOL_METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
    "shutdown",
)
# Protocol attributes it reads or sets: the names uvicorn's own protocol code must use.
PROTOCOL_FIELDS = (
    "app_state",
    "asgi_version",
    "client",
    "connections",
    "cycle",
    "expect_100_continue",
    "flow",
    "headers",
    "limit_concurrency",
    "loop",
    "parser",
    "pipeline",
    "root_path",
    "scheme",
    "scope",
    "server",
    "server_state",
    "tasks",
    "transport",
    "url",
)
# What the protocol reads from its `cycle`, which a fast request stands in for.
CYCLE_FIELDS = (
    "disconnected",
    "keep_alive",
    "message_event",
    "response_complete",
    "response_started",
)
PARSER_METHODS = ("get_http_version", "get_method", "should_keep_alive", "should_upgrade")


def uvicorn_version() -> str:
    try:
        return version("uvicorn")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def missing_internals() -> list[str]:
    """The uvicorn internals the fast path uses that this uvicorn lacks (or has in another
    shape); empty when every one is there."""
    missing: list[str] = []
    protocol = getattr(httptools_impl, "HttpToolsProtocol", None)
    cycle = getattr(httptools_impl, "RequestResponseCycle", None)
    if not inspect.isclass(protocol):
        return ["httptools_impl.HttpToolsProtocol"]
    missing += [
        f"HttpToolsProtocol.{name}"
        for name in PROTOCOL_METHODS
        if not callable(getattr(protocol, name, None))
    ]
    # Instance attributes exist only on a connection; the names uvicorn's protocol code
    # reads and assigns are the shape to compare with.
    used = _names_used(protocol)
    missing += [f"HttpToolsProtocol.{name}" for name in PROTOCOL_FIELDS if name not in used]
    if not inspect.isclass(cycle):
        missing.append("httptools_impl.RequestResponseCycle")
    else:
        assigned = _names_used(cycle)
        missing += [f"RequestResponseCycle.{name}" for name in CYCLE_FIELDS if name not in assigned]
    missing += [
        f"httptools.HttpRequestParser.{name}"
        for name in PARSER_METHODS
        if not callable(getattr(httptools.HttpRequestParser, name, None))
    ]
    status_line = getattr(httptools_impl, "STATUS_LINE", None)
    if not isinstance(status_line, Mapping) or not isinstance(status_line.get(200), bytes):
        missing.append("httptools_impl.STATUS_LINE (status -> bytes)")
    if not callable(getattr(getattr(httptools_impl, "HEADER_VALUE_RE", None), "search", None)):
        missing.append("httptools_impl.HEADER_VALUE_RE (a compiled pattern)")
    if not hasattr(ServerState(), "default_headers"):
        missing.append("ServerState.default_headers")
    return missing


def _names_used(cls: type) -> set[str]:
    """Every attribute and global name the code of `cls`'s functions mentions (its own and
    its bases', should uvicorn move code into a shared base class)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        for member in vars(klass).values():
            code = getattr(member, "__code__", None)
            if code is not None:
                names.update(code.co_names)
    return names


def fast_path_usable(logger: logging.Logger = log) -> bool:
    """Whether this uvicorn has what the fast path uses; if not, one WARNING says which
    version lacks what, and that every request takes the ASGI path. Call once, at start-up."""
    try:
        missing = missing_internals()
    except Exception as exc:  # a shape so different that looking fails: same answer
        missing = [f"({exc!r} while looking)"]
    if not missing:
        return True
    logger.warning(
        "uvicorn %s lacks what the InvokeEndpoint fast path uses from its httptools protocol "
        "(%s); every request takes the ASGI path, as with http_fast_path = false. The "
        "version this modelhost was tested with is pinned in constraints.txt.",
        uvicorn_version(),
        ", ".join(missing),
    )
    return False
