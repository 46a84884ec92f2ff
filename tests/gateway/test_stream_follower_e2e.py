"""A serverless endpoint's streamed invocation through a follower gateway: the follower
relays the leader's event stream (and a V2 generate_stream) part by part, and its error
events as they were (a model failing, the leader's whole-stream limit); its instance runs
on the leader."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EventStreamError

from modelhost.gateway.auth.client import signed_headers
from modelhost.testing.postgres import PostgresCluster
from tests.gateway.scaleout_support import two_gateways, until
from tests.gateway.stream_support import stream_messages
from tests.gateway.token_model import words, write_token_model
from tests.support import deploy, unique

pytestmark = pytest.mark.integration

NO_RETRY = {"retries": {"max_attempts": 1, "mode": "standard"}}


def _serverless(sm: Any, name: str, artifact: Path) -> None:
    deploy(sm, name, str(artifact), serverless={"MemorySizeInMB": 1024, "MaxConcurrency": 2})


def _joined(rt: Any, name: str, text: str) -> bytes | None:
    """InvokeEndpoint's answer, or None while the follower has no route yet."""
    try:
        out = rt.invoke_endpoint(EndpointName=name, ContentType="text/plain", Body=text)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ValidationError", "ServiceUnavailable"):
            return None
        raise
    return bytes(out["Body"].read())


def test_a_follower_relays_a_serverless_stream_part_by_part(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    artifact = write_token_model(tmp_path / "token-model")
    # A whole-stream limit each stream here stays well under, except the last one's.
    extra = {"MODELHOST_SERVERLESS_IDLE_S": "60", "MODELHOST_STREAM_MAX_DURATION_S": "5"}
    with two_gateways(tmp_path, postgres.fresh_database_url(), extra) as (a, b):
        sm_a, _ = a.clients(**NO_RETRY)
        _, rt_b = b.clients(**NO_RETRY)
        name = unique("sls-tokens")
        _serverless(sm_a, name, artifact)
        # From zero through the follower; InvokeEndpoint gets the tokens joined.
        text = "hello from the leader"
        assert until(lambda: _joined(rt_b, name, text), "serverless via b", 120) == b"".join(
            words(text)
        )
        release = tmp_path / uuid.uuid4().hex
        response = rt_b.invoke_endpoint_with_response_stream(
            EndpointName=name, ContentType="text/plain", Body=f"first wait:{release} last"
        )
        assert response["ContentType"] == "text/plain; charset=utf-8"
        body = response["Body"]
        events = iter(body)
        # The generator on the leader's instance waits for `release`: a follower that
        # buffered the leader's answer would hand out nothing before its 60 s wait ended.
        assert next(events) == {"PayloadPart": {"Bytes": b"first "}}
        release.touch()
        assert [e["PayloadPart"]["Bytes"] for e in events] == [b"released ", b"last "]
        body.close()
        # The V2 generate extension through the follower: forwarded, and streamed too.
        again = tmp_path / uuid.uuid4().hex
        url = f"{b.url}/v2/models/{name}/generate_stream"
        headers = {**signed_headers(url, "POST", b.credentials), "Content-Type": "application/json"}
        request = json.dumps({"text_input": f"v2 wait:{again} done"}).encode()
        with urllib.request.urlopen(urllib.request.Request(url, request, headers), timeout=60) as r:
            assert json.loads(r.readline()[len(b"data: ") :])["text_output"] == "v2 "
            again.touch()
            rest = [json.loads(line[len(b"data: ") :]) for line in r.read().split(b"\n\n") if line]
        assert [doc["text_output"] for doc in rest] == ["released ", "done "]
        # A model failing mid-stream: the leader's ModelStreamError event, relayed as it was.
        failing = rt_b.invoke_endpoint_with_response_stream(
            EndpointName=name, ContentType="text/plain", Body="one fail"
        )["Body"]
        events = iter(failing)
        assert next(events) == {"PayloadPart": {"Bytes": b"one "}}
        with pytest.raises(EventStreamError) as info:
            next(events)
        failing.close()
        assert info.value.response["Error"]["Code"] == "ModelStreamError"
        assert "the token model failed" in info.value.response["Error"]["Message"]
        kind, members = stream_messages(b, name, b"two fail")[-1]
        assert (kind, members["ErrorCode"]) == ("ModelStreamError", "StreamBroken")
        # A model that never stops: the leader cuts it at its whole-stream limit, the
        # follower relays the leader's event as it was.
        stopped = tmp_path / uuid.uuid4().hex
        messages = stream_messages(b, name, f"forever:{stopped}".encode())
        assert messages[0] == ("PayloadPart", b"tick ")
        kind, members = messages[-1]
        assert (kind, members["ErrorCode"]) == ("ModelStreamError", "ModelInvocationTimeExceeded")
        assert "allotted time (5 s for the whole stream)" in members["Message"]
        until(stopped.exists, "the leader's instance to stop the generator", 60)
        assert list((a.home / "logs" / name).rglob("i-*.log"))  # the leader ran it
        assert not (b.home / "logs" / name).exists()
