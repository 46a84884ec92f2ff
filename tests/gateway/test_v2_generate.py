"""The V2 generate extension's pure parts: its routes and actions, request checks, and text
decoded across part boundaries (the end-to-end tests are in test_stream_script_e2e.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from modelhost.errors import ValidationError
from modelhost.gateway.auth.actions import v2_target
from modelhost.gateway.v2_api import parse_model_path
from modelhost.gateway.v2_generate import _check_request, _texts


def test_generate_routes_and_their_actions() -> None:
    for verb, action in (
        ("generate", "sagemaker:InvokeEndpoint"),
        ("generate_stream", "sagemaker:InvokeEndpointWithResponseStream"),
        ("infer", "sagemaker:InvokeEndpoint"),
    ):
        path = parse_model_path("POST", f"/v2/models/llm/versions/B/{verb}")
        assert path is not None
        assert (path.endpoint, path.version, path.verb) == ("llm", "B", verb)
        target = v2_target("POST", f"/v2/models/llm/{verb}")
        assert (target.action, target.resource) == (action, "endpoint/llm")
    assert parse_model_path("POST", "/v2/models/llm/generate_more") is None


def test_request_checks() -> None:
    _check_request(b'{"text_input": "hi", "parameters": {"max_tokens": 3}, "extra": 1}')
    _check_request(b'{"prompt": "no text_input: the model reads what it wants"}')
    for bad, rule in (
        (b"not json", "not JSON"),
        (b'["a"]', "JSON object"),
        (b'{"text_input": 3}', "text_input must be a string"),
        (b'{"parameters": [1]}', "parameters must be an object"),
    ):
        with pytest.raises(ValidationError, match=rule):
            _check_request(bad)


def test_a_character_split_between_parts_stays_whole() -> None:
    snowman = "☃".encode()

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"a" + snowman[:1], snowman[1:], b"b", b"\xff"):
            yield part

    async def collect() -> list[str]:
        return [text async for text in _texts(parts())]

    assert asyncio.run(collect()) == ["a", "☃", "b", "\ufffd"]
