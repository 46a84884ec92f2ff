"""Async inference decisions and formats without processes: capacity, backlog gauges,
output names, the notification message and delivery retries."""

from __future__ import annotations

import asyncio
import base64

from modelhost.jobs.asyncinf.config import AsyncEndpointConfig, async_config, locations
from modelhost.jobs.asyncinf.lease import backlog_gauges, backoff_s, capacity, is_expired
from modelhost.jobs.asyncinf.notify import Notifier, message
from modelhost.store.queue import Backlog, QueuedRequest, RequestStatus
from modelhost.testing.clock import FakeClock


def _row(**kw: object) -> QueuedRequest:
    base: dict[str, object] = dict(
        request_id="r1",
        endpoint="ep",
        inference_id="abc",
        output_location="s3://b/out/r1.out",
        failure_location="s3://b/fail/r1-error.out",
        received_s=1_700_000_000.0,
        expires_s=1_700_000_060.0,
        invocation_timeout_s=900.0,
        headers={"ContentType": "text/csv"},
        input_location="s3://b/in/x.csv",
    )
    base.update(kw)
    return QueuedRequest(**base)  # type: ignore[arg-type]


def test_capacity_is_per_instance_times_instances_minus_running() -> None:
    assert capacity(10, 2, 5) == 15
    assert capacity(1, 3, 3) == 0
    assert capacity(4, 0, 0) == 0  # scaled to zero: requests wait


def test_expiry_and_backoff() -> None:
    clock = FakeClock(1_700_000_000.0)
    row = _row()
    assert not is_expired(row, clock())
    assert is_expired(row, clock.advance(60))
    assert [backoff_s(a) for a in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_s(20) == 30.0


def test_backlog_gauges_flag_a_backlog_without_capacity() -> None:
    gauges = backlog_gauges(Backlog(6, 100.0), 0, 130.0)
    assert gauges == {
        "ApproximateBacklogSize": 6.0,
        "ApproximateBacklogSizePerInstance": 6.0,
        "ApproximateAgeOfOldestRequest": 30.0,
        "HasBacklogWithoutCapacity": 1.0,
    }
    assert backlog_gauges(Backlog(6, 100.0), 3, 130.0)["ApproximateBacklogSizePerInstance"] == 2
    assert backlog_gauges(None, 0, 130.0)["HasBacklogWithoutCapacity"] == 0.0


def test_config_and_output_names() -> None:
    spec = {
        "Config": {
            "ProductionVariants": [{"VariantName": "v1"}],
            "AsyncInferenceConfig": {
                "OutputConfig": {"S3OutputPath": "s3://b/out/", "S3FailurePath": "s3://b/fail"},
            },
        }
    }
    config = async_config(spec, 4)
    assert config == AsyncEndpointConfig("s3://b/out/", "s3://b/fail", 4, first_variant="v1")
    assert async_config({"Config": {}}, 4) is None
    assert locations(config, "id1", None, None) == (
        "s3://b/out/id1.out",
        "s3://b/fail/id1-error.out",
    )
    assert locations(config, "id1", "day/1", "x.json") == (
        "s3://b/out/day/1/x.json",
        "s3://b/fail/day/1/x.json-error.out",
    )


def test_message_follows_sagemakers_inference_result_event() -> None:
    done = _row(
        status=RequestStatus.SUCCEEDED, finished_s=1_700_000_001.5, response_type="text/csv"
    )
    body = message(done, "us-east-1", b"0.5\n")
    assert body["invocationStatus"] == "Completed"
    assert body["eventSource"] == "aws:sagemaker" and body["eventVersion"] == "1.0"
    assert body["eventName"] == "InferenceResult" and body["awsRegion"] == "us-east-1"
    assert body["inferenceId"] == "abc"
    assert body["receivedTime"] == "2023-11-14T22:13:20.000Z"
    assert body["eventTime"] == "2023-11-14T22:13:21.500Z"
    assert body["requestParameters"] == {
        "endpointName": "ep",
        "inputLocation": "s3://b/in/x.csv",
        "contentType": "text/csv",
    }
    assert body["responseParameters"] == {
        "contentType": "text/csv",
        "outputLocation": "s3://b/out/r1.out",
    }
    assert base64.b64decode(body["responseBody"]["content"]) == b"0.5\n"
    failed = message(_row(status=RequestStatus.FAILED, failure_reason="boom"), "us-east-1")
    assert failed["invocationStatus"] == "Failed" and failed["failureReason"] == "boom"
    assert failed["responseParameters"]["failureLocation"] == "s3://b/fail/r1-error.out"
    assert "responseBody" not in failed


def test_delivery_retries_with_backoff_then_gives_up() -> None:
    clock = FakeClock()
    calls: list[str] = []

    async def flaky(topic: str, text: str) -> None:
        calls.append(topic)
        if len(calls) < 3:
            raise OSError("connection refused")

    async def sleep(seconds: float) -> None:
        clock.slept_s.append(seconds)

    notifier = Notifier(None, "us-east-1", attempts=4, sleep=sleep)
    assert asyncio.run(notifier.deliver("http://x/hook", "{}", flaky))
    assert len(calls) == 3 and clock.slept_s == [0.5, 1.0]

    async def down(topic: str, text: str) -> None:
        raise OSError("down")

    clock.slept_s.clear()
    assert not asyncio.run(notifier.deliver("http://x/hook", "{}", down))
    assert clock.slept_s == [0.5, 1.0, 2.0]
