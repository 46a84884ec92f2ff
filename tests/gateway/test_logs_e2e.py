"""Instance logs through CloudWatch Logs: a real server, a script-mode model that prints,
boto3's `logs` client and the AWS CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from modelhost.telemetry.logs import instance_log_stream_arn
from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV, deploy, unique

pytestmark = pytest.mark.integration

ECHO_SCRIPT = """
import json


def model_fn(model_dir):
    print("model_fn: the echo model is ready")
    return "echo"


def input_fn(body, content_type):
    return json.loads(body)


def predict_fn(data, model):
    print(f"predict_fn saw marker={data['marker']}")
    if data.get("fail"):
        raise RuntimeError("broken on purpose")
    return data


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""


@pytest.fixture(scope="module")
def logs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    home = tmp_path_factory.mktemp("logs-home")
    env = {**FAST_ENV, "MODELHOST_LOGS_POLL_INTERVAL_S": "0.2"}
    with ModelhostServer(home, env=env) as srv:
        yield srv


def logs_client(server: ModelhostServer) -> Any:
    key_id, secret = server.credentials
    return boto3.client(
        "logs",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture(scope="module")
def echo_endpoint(logs_server: ModelhostServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("echo")
    (root / "inference.py").write_text(ECHO_SCRIPT)
    artifact = root / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        tar.add(root / "inference.py", arcname="code/inference.py")
    sm, _ = logs_server.clients()
    name = unique("logs")
    deploy(sm, name, str(artifact), image=None)
    return name


def _invoke(server: ModelhostServer, endpoint: str, marker: str, fail: bool = False) -> None:
    _, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    body = json.dumps({"marker": marker, "fail": fail})
    rt.invoke_endpoint(EndpointName=endpoint, ContentType="application/json", Body=body)


def test_a_print_is_found_by_filter_log_events(
    logs_server: ModelhostServer, echo_endpoint: str
) -> None:
    logs = logs_client(logs_server)
    marker = uuid.uuid4().hex
    _invoke(logs_server, echo_endpoint, marker)
    group = f"/aws/sagemaker/Endpoints/{echo_endpoint}"
    found = logs.filter_log_events(logGroupName=group, filterPattern=f'"marker={marker}"')
    assert [e["message"] for e in found["events"]] == [f"predict_fn saw marker={marker}"]
    event = found["events"][0]
    stream = event["logStreamName"]
    assert stream.startswith("AllTraffic/i-")
    assert event["timestamp"] <= event["ingestionTime"] + 5000
    # The stream is listed, with SageMaker's ARN for it, under the endpoint's group.
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/Endpoints/")
    assert group in [g["logGroupName"] for g in groups["logGroups"]]
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="AllTraffic/")
    listed = {s["logStreamName"]: s for s in streams["logStreams"]}
    variant, instance_id = stream.split("/")
    assert listed[stream]["arn"] == instance_log_stream_arn(
        "us-east-1", "123456789012", echo_endpoint, variant, instance_id
    )
    assert listed[stream]["lastEventTimestamp"] >= event["timestamp"]
    # model_fn's print came first in the same stream.
    head = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    messages = [e["message"] for e in head["events"]]
    assert messages.index("model_fn: the echo model is ready") < messages.index(
        f"predict_fn saw marker={marker}"
    )


def test_get_log_events_pages_like_sdk_loops(
    logs_server: ModelhostServer, echo_endpoint: str
) -> None:
    logs = logs_client(logs_server)
    run = uuid.uuid4().hex[:8]
    markers = [f"{run}-{i:02d}" for i in range(23)]
    for m in markers:
        _invoke(logs_server, echo_endpoint, m)
    group = f"/aws/sagemaker/Endpoints/{echo_endpoint}"
    stream = logs.describe_log_streams(
        logGroupName=group, orderBy="LastEventTime", descending=True, limit=1
    )["logStreams"][0]["logStreamName"]
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:  # the SageMaker SDK's log_stream loop
        kwargs = {"nextToken": token} if token else {}
        page = logs.get_log_events(
            logGroupName=group, logStreamName=stream, startFromHead=True, limit=5, **kwargs
        )
        pages += 1
        if not page["events"]:
            assert page["nextForwardToken"] == token  # the end: the token repeats
            break
        seen += [e["message"] for e in page["events"]]
        token = page["nextForwardToken"]
    assert pages > 5
    mine = [m.split("=")[1] for m in seen if m.startswith(f"predict_fn saw marker={run}")]
    assert mine == markers
    # FilterLogEvents through botocore's paginator.
    paginator = logs.get_paginator("filter_log_events")
    events = [
        e
        for p in paginator.paginate(
            logGroupName=group, filterPattern=run, PaginationConfig={"PageSize": 4}
        )
        for e in p["events"]
    ]
    assert [e["message"].split("=")[1] for e in events] == markers
    # The newest page without startFromHead ends with the last marker.
    tail = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=3)
    assert tail["events"][-1]["message"].endswith(markers[-1])


def test_errors_carry_the_service_codes(logs_server: ModelhostServer, echo_endpoint: str) -> None:
    logs = logs_client(logs_server)
    group = f"/aws/sagemaker/Endpoints/{echo_endpoint}"

    def code(call: Any, **kwargs: Any) -> str:
        with pytest.raises(ClientError) as info:
            call(**kwargs)
        return str(info.value.response["Error"]["Code"])

    assert code(logs.describe_log_streams, logGroupName="/aws/sagemaker/Endpoints/nope") == (
        "ResourceNotFoundException"
    )
    assert code(logs.get_log_events, logGroupName=group, logStreamName="AllTraffic/i-x") == (
        "ResourceNotFoundException"
    )
    assert code(
        logs.describe_log_streams,
        logGroupName=group,
        orderBy="LastEventTime",
        logStreamNamePrefix="A",
    ) == ("InvalidParameterException")
    stream = logs.describe_log_streams(logGroupName=group)["logStreams"][0]["logStreamName"]
    assert code(
        logs.get_log_events, logGroupName=group, logStreamName=stream, nextToken="garbage"
    ) == ("InvalidParameterException")
    assert code(logs.filter_log_events, logGroupName=group, filterPattern="{ $.x = 1 }") == (
        "InvalidParameterException"
    )


def test_model_error_prints_and_logs_survive_a_restart(
    logs_server: ModelhostServer, echo_endpoint: str
) -> None:
    _, rt = logs_server.clients(retries={"max_attempts": 1, "mode": "standard"})
    marker = uuid.uuid4().hex
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(
            EndpointName=echo_endpoint,
            ContentType="application/json",
            Body=json.dumps({"marker": marker, "fail": True}),
        )
    assert info.value.response["Error"]["Code"] == "ModelError"
    logs = logs_client(logs_server)
    group = f"/aws/sagemaker/Endpoints/{echo_endpoint}"
    # LogStreamArn names the stream of the instance that answered, and that stream exists.
    arn = info.value.response["LogStreamArn"]
    named_group, _, named_stream = arn.partition(":log-group:")[2].partition(":log-stream:")
    assert named_group == group
    assert named_stream.startswith("AllTraffic/"), arn
    deadline = time.monotonic() + 60
    while True:
        listed = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=named_stream)
        found = {s["logStreamName"]: s["arn"] for s in listed["logStreams"]}
        if named_stream in found or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found.get(named_stream) == arn
    before = logs.filter_log_events(logGroupName=group, filterPattern="broken on purpose")
    assert before["events"], "the traceback of the failed predict_fn is in the log"
    mine = logs.filter_log_events(logGroupName=group, filterPattern=f'"marker={marker}"')
    old_streams = {
        s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]
    }
    logs_server.restart()
    sm, _ = logs_server.clients()
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=echo_endpoint, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    # The endpoint comes back InService while its instance starts again (as SageMaker's
    # does after a host replacement): retry the first call until it is up.
    deadline = time.monotonic() + 60
    while True:
        try:
            _invoke(logs_server, echo_endpoint, "after-restart")
            break
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ServiceUnavailable" or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    logs = logs_client(logs_server)
    streams = {
        s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]
    }
    # The replaced instance's stream is still there, beside the new instance's.
    assert old_streams < streams
    again = logs.filter_log_events(logGroupName=group, filterPattern=f'"marker={marker}"')
    # Indexed once: the restart neither lost nor repeated the event.
    assert again["events"] == mine["events"] and len(again["events"]) == 1


def test_aws_cli_describe_log_streams(
    logs_server: ModelhostServer, echo_endpoint: str, tmp_path: Path
) -> None:
    key_id, secret = logs_server.credentials
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": logs_server.url,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    group = f"/aws/sagemaker/Endpoints/{echo_endpoint}"
    out = subprocess.run(
        [sys.executable, "-m", "awscli", "logs", "describe-log-streams", "--log-group-name", group],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    streams = json.loads(out.stdout)["logStreams"]
    assert all(s["logStreamName"].startswith("AllTraffic/i-") for s in streams) and streams


def test_cli_logs_and_credentials(logs_server: ModelhostServer, echo_endpoint: str) -> None:
    marker = uuid.uuid4().hex
    _invoke(logs_server, echo_endpoint, marker)
    env = {**os.environ, "MODELHOST_URL": logs_server.url, "MODELHOST_HOME": str(logs_server.home)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modelhost", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    out = cli("logs", echo_endpoint, "--since", "1h", "--filter", marker)
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    assert line.endswith(f" predict_fn saw marker={marker}") and " AllTraffic/i-" in line
    missing = cli("logs", "no-such-endpoint")
    assert missing.returncode == 1 and "no logs for endpoint no-such-endpoint" in missing.stderr
    assert cli("logs").returncode == 2  # neither an endpoint nor --job
    # `modelhost credentials` points unmodified boto3 `logs` code at the server.
    creds = cli("credentials")
    exported = dict(
        line.removeprefix("export ").split("=", 1) for line in creds.stdout.splitlines()
    )
    assert exported["AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"] == logs_server.url
    assert exported["AWS_ENDPOINT_URL_CLOUDWATCH"] == logs_server.url
    script = (
        "import boto3; print(boto3.client('logs').describe_log_groups()['logGroups'][0]"
        "['logGroupName'])"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    run = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, **exported},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stdout.strip().startswith("/aws/sagemaker/"), run.stderr
