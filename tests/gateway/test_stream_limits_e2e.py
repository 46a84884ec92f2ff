"""The whole-stream limit (`stream_max_duration_s`, made 2 s here) through real boto3: a
script-mode generator and a user's server (BYOC) that stream a part every 20 ms forever,
so the per-part limit never fires. The parts sent before the limit are read, then boto3
raises EventStreamError (ModelStreamError, ModelInvocationTimeExceeded); the instance's
connection is closed (the model is stopped); the endpoint keeps answering. And an
instance on uvicorn, which cannot send the error trailer, names a failure mid-stream with
an error frame (container/stream_frames.py)."""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EventStreamError

from modelhost.gateway.auth.client import signed_headers
from modelhost.testing.server import ModelhostServer
from tests.gateway.scaleout_support import until
from tests.gateway.stream_support import stream_messages
from tests.gateway.token_model import write_token_model
from tests.support import FAST_ENV, deploy, unique

pytestmark = pytest.mark.integration

LIMIT_S = 2
SERVER = Path(__file__).with_name("streaming_server.py")
NO_RETRY = {"retries": {"max_attempts": 1, "mode": "standard"}}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    env = {**FAST_ENV, "MODELHOST_STREAM_MAX_DURATION_S": str(LIMIT_S)}
    with ModelhostServer(tmp_path_factory.mktemp("stream-limit-home"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stream-limit-release")


@pytest.fixture(scope="module")
def endpoints(
    limited: ModelhostServer, tmp_path_factory: pytest.TempPathFactory, release_dir: Path
) -> dict[str, str]:
    """{"script": a token model's endpoint, "byoc": a user's streaming server's, "uvicorn":
    the token model's on instances served by uvicorn}."""
    sm, _ = limited.clients()
    script, byoc, on_uvicorn = unique("limit-tokens"), unique("limit-byoc"), unique("uvicorn")
    artifact = str(write_token_model(tmp_path_factory.mktemp("limit-model")))
    deploy(sm, script, artifact, wait=False)
    uvicorn = {"MH_INSTANCE_HTTP_SERVER": "uvicorn"}
    deploy(sm, on_uvicorn, artifact, environment=uvicorn, wait=False)
    model_dir = tmp_path_factory.mktemp("limit-byoc-model")
    shutil.copy(SERVER, model_dir / "server.py")
    deploy(
        sm,
        byoc,
        str(model_dir),
        image=f"command:{sys.executable} server.py",
        environment={"RELEASE_DIR": str(release_dir)},
        wait=False,
    )
    for name in (script, byoc, on_uvicorn):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 240}
        )
    return {"script": script, "byoc": byoc, "uvicorn": on_uvicorn}


def _cut_off(rt: Any, name: str, body: str) -> str:
    """Stream `body`, read parts until boto3 raises; the error's message."""
    stream = rt.invoke_endpoint_with_response_stream(
        EndpointName=name, ContentType="text/plain", Body=body
    )["Body"]
    ticks = 0
    with pytest.raises(EventStreamError) as info:
        for event in stream:
            assert event["PayloadPart"]["Bytes"] == b"tick "
            ticks += 1
    stream.close()  # its connection, else a ResourceWarning in whichever test runs next
    assert ticks > 0  # the parts before the limit reached the client
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    return str(info.value.response["Error"]["Message"])


def test_a_script_mode_stream_is_cut_off_at_the_limit(
    limited: ModelhostServer, endpoints: dict[str, str], tmp_path: Path
) -> None:
    _, rt = limited.clients(**NO_RETRY)
    name = endpoints["script"]
    stopped = tmp_path / uuid.uuid4().hex
    message = _cut_off(rt, name, f"forever:{stopped}")
    assert "did not complete sending the inference response in the allotted time" in message
    assert f"{LIMIT_S} s for the whole stream" in message
    # The gateway closed the instance's connection, so the instance stopped the generator.
    until(stopped.exists, "the generator closed", 60)
    # What boto3 does not show: the event's ErrorCode.
    kind, members = stream_messages(limited, name, f"forever:{tmp_path / 'x'}".encode())[-1]
    assert (kind, members["ErrorCode"]) == ("ModelStreamError", "ModelInvocationTimeExceeded")
    # The endpoint keeps answering, streamed and whole.
    parts = rt.invoke_endpoint_with_response_stream(
        EndpointName=name, ContentType="text/plain", Body="still here"
    )["Body"]
    assert [e["PayloadPart"]["Bytes"] for e in parts] == [b"still ", b"here "]
    out = rt.invoke_endpoint(EndpointName=name, ContentType="text/plain", Body="a b")
    assert out["Body"].read() == b"a b "


def test_a_user_servers_stream_is_cut_off_and_its_connection_closed(
    limited: ModelhostServer, endpoints: dict[str, str], release_dir: Path
) -> None:
    _, rt = limited.clients(**NO_RETRY)
    name = endpoints["byoc"]
    token = uuid.uuid4().hex
    assert "allotted time" in _cut_off(rt, name, f"forever {token}")
    until((release_dir / token).exists, "the server's write to fail", 60)
    events = rt.invoke_endpoint_with_response_stream(
        EndpointName=name, ContentType="text/plain", Body="whole"
    )["Body"]
    assert list(events) == [{"PayloadPart": {"Bytes": b"all at once"}}]


def test_v2_generate_stream_ends_with_the_error_event(
    limited: ModelhostServer, endpoints: dict[str, str], tmp_path: Path
) -> None:
    url = f"{limited.url}/v2/models/{endpoints['script']}/generate_stream"
    headers = {
        **signed_headers(url, "POST", limited.credentials),
        "Content-Type": "application/json",
    }
    body = json.dumps({"text_input": f"forever:{tmp_path / 'v2'}"}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=60) as resp:
        events = [line for line in resp.read().split(b"\n\n") if line]
    assert json.loads(events[0][len(b"data: ") :])["text_output"] == "tick "
    last = json.loads(events[-1][len(b"data: ") :])
    assert list(last) == ["error"] and "allotted time" in last["error"]


def test_an_instance_on_uvicorn_names_a_failure_mid_stream(
    limited: ModelhostServer, endpoints: dict[str, str]
) -> None:
    _, rt = limited.clients(**NO_RETRY)
    name = endpoints["uvicorn"]
    body = rt.invoke_endpoint_with_response_stream(
        EndpointName=name, ContentType="text/plain", Body="one two fail three"
    )["Body"]
    events = iter(body)
    # The model's bytes, unframed by the gateway.
    assert next(events) == {"PayloadPart": {"Bytes": b"one "}}
    assert next(events) == {"PayloadPart": {"Bytes": b"two "}}
    with pytest.raises(EventStreamError) as info:
        next(events)
    body.close()
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    # The cause, carried in the instance's error frame (uvicorn sends no trailers).
    assert "ValueError: the token model failed" in info.value.response["Error"]["Message"]
    kind, members = stream_messages(limited, name, b"one fail")[-1]
    assert (kind, members["ErrorCode"]) == ("ModelStreamError", "StreamBroken")
    # Whole streams and InvokeEndpoint get the model's bytes as they are.
    parts = rt.invoke_endpoint_with_response_stream(
        EndpointName=name, ContentType="text/plain", Body="a b"
    )["Body"]
    assert [e["PayloadPart"]["Bytes"] for e in parts] == [b"a ", b"b "]
    out = rt.invoke_endpoint(EndpointName=name, ContentType="text/plain", Body="a b")
    assert out["Body"].read() == b"a b "
