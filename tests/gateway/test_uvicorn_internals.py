"""The start-up check of the uvicorn internals the fast path uses (gateway/uvicorn_internals.py):
this uvicorn passes; one that lacks a name gets one WARNING and the ASGI path for every
request, through the protocol class `modelhost serve` builds."""

from __future__ import annotations

import asyncio
import logging
import types
from pathlib import Path
from typing import Any

import pytest
from uvicorn.protocols.http import httptools_impl

from modelhost.gateway import uvicorn_internals
from modelhost.gateway.fastpath import FastInvokeProtocol
from modelhost.gateway.uvicorn_internals import fast_path_usable, missing_internals
from modelhost.testing.dataplane import answer
from tests.gateway.fastpath_support import connect, invocation, settle


def test_the_pinned_uvicorn_has_everything_the_fast_path_uses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert missing_internals() == []
    with caplog.at_level(logging.WARNING, "modelhost.gateway"):
        assert fast_path_usable()
    assert caplog.records == []


@pytest.mark.parametrize(
    ("owner", "name", "reported"),
    [
        (httptools_impl.HttpToolsProtocol, "on_response_complete", "on_response_complete"),
        (httptools_impl, "STATUS_LINE", "STATUS_LINE"),
        (httptools_impl, "HEADER_VALUE_RE", "HEADER_VALUE_RE"),
        (httptools_impl, "RequestResponseCycle", "RequestResponseCycle"),
    ],
)
def test_a_missing_internal_is_named_in_one_warning(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    owner: object,
    name: str,
    reported: str,
) -> None:
    monkeypatch.delattr(owner, name)
    with caplog.at_level(logging.WARNING, "modelhost.gateway"):
        assert not fast_path_usable()
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"uvicorn {uvicorn_internals.uvicorn_version()} " in message
    assert reported in message and "ASGI path" in message


def test_a_renamed_attribute_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Instance attributes exist only per connection: their shape is the names the
    protocol's code uses, so uvicorn's protocol with `pipeline` renamed is caught."""

    def renamed(member: Any) -> Any:
        if not isinstance(member, types.FunctionType):
            return member
        code = member.__code__
        names = tuple("queued" if n == "pipeline" else n for n in code.co_names)
        return types.FunctionType(
            code.replace(co_names=names), member.__globals__, member.__name__,
            member.__defaults__, member.__closure__,
        )  # fmt: skip

    real = vars(httptools_impl.HttpToolsProtocol)
    members = {k: renamed(v) for k, v in real.items() if k not in ("__dict__", "__weakref__")}
    monkeypatch.setattr(
        httptools_impl, "HttpToolsProtocol", type("HttpToolsProtocol", (asyncio.Protocol,), members)
    )
    assert missing_internals() == ["HttpToolsProtocol.pipeline"]


def test_without_the_internals_invocations_take_the_asgi_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The fallback is the `http_fast_path = false` state: uvicorn's own protocol (with the
    limits), no fast path class at all; a plain InvokeEndpoint is answered through ASGI."""
    # A name this uvicorn lacks, without breaking the uvicorn that serves the test.
    needed = (*uvicorn_internals.PROTOCOL_METHODS, "on_a_future_callback")
    monkeypatch.setattr(uvicorn_internals, "PROTOCOL_METHODS", needed)

    async def run() -> None:
        protocol, sock, app = connect(tmp_path, answer(body=b"0.5"), served=True)
        assert not isinstance(protocol, FastInvokeProtocol)
        protocol.data_received(invocation())
        await settle(sock, 1)
        [(status, _, body)] = sock.answers()
        assert (status, body) == (200, b"0.5")
        assert app.paths == ["/endpoints/ep/invocations"]

    with caplog.at_level(logging.WARNING, "modelhost.gateway"):
        asyncio.run(run())
    assert ["HttpToolsProtocol.on_a_future_callback" in r.getMessage() for r in caplog.records] == [
        True
    ]


def test_with_the_internals_the_served_class_has_the_fast_path(tmp_path: Path) -> None:
    async def run() -> None:
        protocol, sock, app = connect(tmp_path, answer(body=b"0.5"), served=True)
        assert isinstance(protocol, FastInvokeProtocol)
        protocol.data_received(invocation())
        await settle(sock, 1)
        assert app.paths == []  # served below ASGI

    asyncio.run(run())
