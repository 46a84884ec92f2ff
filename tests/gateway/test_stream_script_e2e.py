"""A built-in runtime's model that streams: script mode's generator, through real boto3
(InvokeEndpointWithResponseStream part by part, InvokeEndpoint joined), through the V2
generate extension (SSE), and its errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EventStreamError

from modelhost.gateway.auth.client import signed_headers
from modelhost.testing.server import ModelhostServer
from tests.gateway.scaleout_support import until
from tests.gateway.stream_support import stream_messages
from tests.gateway.token_model import words, write_token_model
from tests.support import deploy, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def token_endpoint(server: ModelhostServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    artifact = write_token_model(tmp_path_factory.mktemp("token-model"))
    sm, _ = server.clients()
    name = unique("tokens")
    deploy(sm, name, str(artifact))
    return name


def _stream(rt: Any, name: str, text: str, **kw: Any) -> Any:
    return rt.invoke_endpoint_with_response_stream(
        EndpointName=name, ContentType="text/plain", Body=text, **kw
    )


def test_each_token_is_a_part_sent_as_it_is_produced(
    rt: Any, token_endpoint: str, tmp_path: Path
) -> None:
    release = tmp_path / uuid.uuid4().hex
    response = _stream(rt, token_endpoint, f"once upon wait:{release} a time")
    assert response["ContentType"] == "text/plain; charset=utf-8"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    body = response["Body"]
    events = iter(body)
    # The generator is blocked on `release` until both parts before it were read here:
    # a buffered answer would only come after its 60 s wait, saying `not-released`.
    assert next(events) == {"PayloadPart": {"Bytes": b"once "}}
    assert next(events) == {"PayloadPart": {"Bytes": b"upon "}}
    release.touch()
    rest = [event["PayloadPart"]["Bytes"] for event in events]
    assert rest == [b"released ", b"a ", b"time "]
    body.close()


def test_invoke_endpoint_gets_the_tokens_joined(rt: Any, token_endpoint: str) -> None:
    text = "the quick brown fox"
    out = rt.invoke_endpoint(EndpointName=token_endpoint, ContentType="text/plain", Body=text)
    assert out["ContentType"] == "text/plain; charset=utf-8"
    assert out["Body"].read() == b"".join(words(text))


def test_a_failure_before_the_first_token_is_a_model_error(rt: Any, token_endpoint: str) -> None:
    for call in (_stream, _invoke):
        with pytest.raises(rt.exceptions.ModelError) as info:
            call(rt, token_endpoint, "fail now")
        assert info.value.response["OriginalStatusCode"] == 500
        assert "the token model failed" in info.value.response["OriginalMessage"]


def test_a_failure_mid_stream_ends_it_with_model_stream_error(
    server: ModelhostServer, rt: Any, token_endpoint: str
) -> None:
    body = _stream(rt, token_endpoint, "one two fail three")["Body"]
    events = iter(body)
    assert next(events) == {"PayloadPart": {"Bytes": b"one "}}
    assert next(events) == {"PayloadPart": {"Bytes": b"two "}}
    with pytest.raises(EventStreamError) as info:
        next(events)
    body.close()
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    # The cause, carried from the instance (its error trailer), not just "it broke".
    message = info.value.response["Error"]["Message"]
    assert "ValueError: the token model failed" in message
    assert len(message) < 5000  # bounded, as a ModelError's OriginalMessage is
    # What boto3 does not show: the event's ErrorCode member.
    messages = stream_messages(server, token_endpoint, b"one fail")
    assert messages[0] == ("PayloadPart", b"one ")
    kind, members = messages[-1]
    assert (kind, members["ErrorCode"]) == ("ModelStreamError", "StreamBroken")
    assert "the token model failed" in members["Message"]
    # InvokeEndpoint of the same: the model ran and broke off, a ModelError (not resent)
    # quoting the model's error.
    with pytest.raises(rt.exceptions.ModelError) as joined:
        _invoke(rt, token_endpoint, "one two fail three")
    assert joined.value.response["OriginalStatusCode"] == 500
    original = joined.value.response["OriginalMessage"]
    assert "broke off" in original and "ValueError: the token model failed" in original
    # The instance stays healthy: both kinds keep being answered, whole.
    assert [e["PayloadPart"]["Bytes"] for e in _stream(rt, token_endpoint, "ok")["Body"]] == [
        b"ok "
    ]
    assert _invoke(rt, token_endpoint, "a b")["Body"].read() == b"a b "


def test_an_instance_that_dies_mid_stream_ends_it_with_stream_broken(
    server: ModelhostServer, rt: Any, tmp_path: Path
) -> None:
    sm, _ = server.clients()
    name = unique("tokens-crash")
    deploy(sm, name, str(write_token_model(tmp_path / "model")))
    release = tmp_path / uuid.uuid4().hex
    # The process ends once the stream has started (the first part read here).
    body = _stream(rt, name, f"one wait:{release} exit two")["Body"]
    events = iter(body)
    assert next(events) == {"PayloadPart": {"Bytes": b"one "}}
    release.touch()
    with pytest.raises(EventStreamError) as info:
        # `released ` may or may not leave the process before it ends.
        assert {e["PayloadPart"]["Bytes"] for e in events} <= {b"released "}
    body.close()
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert "exited mid-stream" in info.value.response["Error"]["Message"]
    # The instance is replaced and the endpoint streams again.
    assert until(lambda: _parts_or_none(rt, name, "back"), "a new instance", 120) == [b"back "]


def _parts_or_none(rt: Any, name: str, text: str) -> list[bytes] | None:
    try:
        return [e["PayloadPart"]["Bytes"] for e in _stream(rt, name, text)["Body"]]
    except (ClientError, EventStreamError):
        return None


def _invoke(rt: Any, name: str, text: str) -> Any:
    return rt.invoke_endpoint(EndpointName=name, ContentType="text/plain", Body=text)


def _generate(server: ModelhostServer, name: str, verb: str, text: str) -> Any:
    """POST the V2 generate request; the response, open for reading as it arrives."""
    url = f"{server.url}/v2/models/{name}/{verb}"
    headers = signed_headers(url, "POST", server.credentials)
    headers["Content-Type"] = "application/json"
    body = json.dumps({"text_input": text, "parameters": {"max_tokens": 8}}).encode()
    return urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=60)


def test_v2_generate_stream_sends_one_event_per_token(
    server: ModelhostServer, token_endpoint: str, tmp_path: Path
) -> None:
    release = tmp_path / uuid.uuid4().hex
    with _generate(server, token_endpoint, "generate_stream", f"hi wait:{release} you") as resp:
        assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"

        def event() -> dict[str, Any]:
            line = resp.readline()
            assert resp.readline() == b"\n"  # each event ends with a blank line
            assert line.startswith(b"data: ")
            return dict(json.loads(line[len(b"data: ") :]))

        first = event()  # the generator still waits for `release`
        assert first == {"model_name": token_endpoint, "model_version": "AllTraffic",
                         "text_output": "hi "}  # fmt: skip
        release.touch()
        assert [event()["text_output"] for _ in range(2)] == ["released ", "you "]
        assert resp.read() == b""
    with _generate(server, token_endpoint, "generate", "a b") as resp:
        doc = json.loads(resp.read())
    assert doc == {"model_name": token_endpoint, "model_version": "AllTraffic",
                   "text_output": "a b "}  # fmt: skip


def test_v2_generate_errors(server: ModelhostServer, token_endpoint: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as before:
        _generate(server, token_endpoint, "generate_stream", "fail")
    assert before.value.code == 500
    assert "the token model failed" in json.loads(before.value.read())["error"]
    before.value.close()
    with _generate(server, token_endpoint, "generate_stream", "one fail") as resp:
        events = [line for line in resp.read().split(b"\n\n") if line]
    assert json.loads(events[0][len(b"data: ") :])["text_output"] == "one "
    # The stream's last event is Triton's `{"error": ...}`, naming the model's error.
    last = json.loads(events[-1][len(b"data: ") :])
    assert list(last) == ["error"] and "the token model failed" in last["error"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        _generate(server, "no-such-endpoint", "generate", "x")
    assert missing.value.code == 404
    missing.value.close()
