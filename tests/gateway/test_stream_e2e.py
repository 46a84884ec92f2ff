"""InvokeEndpointWithResponseStream through real boto3: a user's server that streams, a
built-in runtime that does not, and the stream's error events."""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EventStreamError

from modelhost.testing.churn import csv_body
from modelhost.testing.server import ModelhostServer
from tests.gateway.stream_support import stream_messages
from tests.support import ChurnModel, deploy, unique

pytestmark = pytest.mark.integration

SERVER = Path(__file__).with_name("streaming_server.py")


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stream-release")


@pytest.fixture(scope="module")
def streaming_endpoint(
    server: ModelhostServer, tmp_path_factory: pytest.TempPathFactory, release_dir: Path
) -> str:
    model_dir = tmp_path_factory.mktemp("stream-model")
    shutil.copy(SERVER, model_dir / "server.py")
    sm, _ = server.clients()
    name = unique("stream")
    deploy(
        sm,
        name,
        str(model_dir),
        image=f"command:{sys.executable} server.py",
        environment={"RELEASE_DIR": str(release_dir)},
    )
    return name


def _stream(rt: Any, name: str, body: str, **kw: Any) -> Any:
    return rt.invoke_endpoint_with_response_stream(
        EndpointName=name, ContentType="text/plain", Body=body, **kw
    )


def test_parts_are_relayed_as_the_model_writes_them(
    rt: Any, streaming_endpoint: str, release_dir: Path
) -> None:
    token = uuid.uuid4().hex
    response = _stream(rt, streaming_endpoint, f"stream {token}", CustomAttributes="c=1")
    assert response["ContentType"] == "text/plain"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    body = response["Body"]
    events = iter(body)
    # The model writes its last part only after this test has read the first one: were
    # the answer buffered, the last part would say `not-released`.
    assert next(events) == {"PayloadPart": {"Bytes": b"part-0 "}}
    (release_dir / token).touch()
    rest = [event["PayloadPart"]["Bytes"] for event in events]
    assert rest == [b"part-1 ", b"released"]
    body.close()


def test_a_broken_stream_ends_with_model_stream_error(
    server: ModelhostServer, rt: Any, streaming_endpoint: str
) -> None:
    # The user's server cuts its connection after one chunk (no trailer: not modelhost's).
    body = _stream(rt, streaming_endpoint, "break")["Body"]
    events = iter(body)
    assert next(events) == {"PayloadPart": {"Bytes": b"part-0 "}}
    with pytest.raises(EventStreamError) as info:
        next(events)
    body.close()
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert "broke" in info.value.response["Error"]["Message"]
    messages = stream_messages(server, streaming_endpoint, b"break")
    assert messages[0] == ("PayloadPart", b"part-0 ")
    kind, members = messages[-1]
    assert (kind, members["ErrorCode"]) == ("ModelStreamError", "StreamBroken")
    # The server keeps serving: a whole answer after the broken ones.
    events = list(_stream(rt, streaming_endpoint, "whole")["Body"])
    assert events == [{"PayloadPart": {"Bytes": b"all at once"}}]


def test_a_user_server_may_name_the_failure_in_the_error_trailer(
    rt: Any, streaming_endpoint: str
) -> None:
    body = _stream(rt, streaming_endpoint, "fail")["Body"]
    events = iter(body)
    assert next(events) == {"PayloadPart": {"Bytes": b"part-0 "}}
    with pytest.raises(EventStreamError) as info:
        next(events)
    body.close()  # its connection, else a ResourceWarning in whichever test runs next
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert "out of tokens!" in info.value.response["Error"]["Message"]
    with pytest.raises(rt.exceptions.ModelError) as joined:
        rt.invoke_endpoint(EndpointName=streaming_endpoint, ContentType="text/plain", Body="fail")
    assert "out of tokens!" in joined.value.response["OriginalMessage"]


def test_whole_answers_and_errors_before_the_stream(rt: Any, streaming_endpoint: str) -> None:
    events = list(_stream(rt, streaming_endpoint, "whole")["Body"])
    assert events == [{"PayloadPart": {"Bytes": b"all at once"}}]
    with pytest.raises(rt.exceptions.ModelError) as info:
        _stream(rt, streaming_endpoint, "error")
    assert info.value.response["OriginalStatusCode"] == 400
    assert "bad input" in info.value.response["OriginalMessage"]
    with pytest.raises(ClientError) as unknown:
        _stream(rt, "no-such-endpoint", "whole")
    assert unknown.value.response["Error"]["Code"] == "ValidationError"


def test_a_built_in_runtime_answers_in_one_part(
    server: ModelhostServer, rt: Any, churn_model: ChurnModel
) -> None:
    sm, _ = server.clients()
    name = unique("stream-xgb")
    deploy(sm, name, str(churn_model.artifact))
    body = csv_body(churn_model.data.X[:5])
    expected = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)
    response = rt.invoke_endpoint_with_response_stream(
        EndpointName=name, ContentType="text/csv", Body=body, Accept="text/csv"
    )
    assert response["ContentType"] == expected["ContentType"]
    parts = [event["PayloadPart"]["Bytes"] for event in response["Body"]]
    assert parts == [expected["Body"].read()]
