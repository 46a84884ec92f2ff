"""Data capture records, file layout, the bounded buffer and the writer, without processes."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from modelhost.errors import ValidationException
from modelhost.resources.capture import CaptureConfig, parse_capture
from modelhost.telemetry.capture import (
    CaptureBuffer,
    Captured,
    CaptureWriter,
    batch_files,
    hour_prefix,
    record,
)

T = 1_765_022_400.25  # 2025-12-06T12:00:00.250Z


def config(**kw: object) -> CaptureConfig:
    base = {
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": "s3://bucket/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
    parsed = parse_capture({**base, **kw})
    assert parsed is not None
    return parsed


def captured(cfg: CaptureConfig, **kw: object) -> Captured:
    values: dict[str, object] = {
        "config": cfg,
        "endpoint": "ep",
        "variant": "AllTraffic",
        "time_s": T,
        "inference_id": None,
        "input_type": b"text/csv",
        "input_body": b"1,2,3",
        "output_type": b"text/csv; charset=utf-8",
        "output_body": b"0.5",
    }
    values.update(kw)
    return Captured(**values)  # type: ignore[arg-type]


def test_record_has_sagemakers_shape() -> None:
    rec = record(captured(config(), inference_id="abc"), event_id="e1")
    assert rec == {
        "captureData": {
            "endpointInput": {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": "1,2,3",
                "encoding": "CSV",
            },
            "endpointOutput": {
                "observedContentType": "text/csv; charset=utf-8",
                "mode": "OUTPUT",
                "data": "0.5",
                "encoding": "CSV",
            },
        },
        "eventMetadata": {
            "eventId": "e1",
            "inferenceId": "abc",
            "inferenceTime": "2025-12-06T12:00:00Z",
        },
        "eventVersion": "0",
    }


def test_encodings_follow_the_content_type_header() -> None:
    cfg = config(
        CaptureContentTypeHeader={"JsonContentTypes": ["application/x-custom"]},
        CaptureOptions=[{"CaptureMode": "InputAndOutput"}],
    )
    rec = record(
        captured(
            cfg,
            input_type=b"application/x-custom",
            input_body=b'{"a": 1}',
            output_type=b"application/x-npy",
            output_body=b"\x93NUMPY",
        )
    )
    data = rec["captureData"]
    assert data["endpointInput"]["encoding"] == "JSON"
    assert data["endpointOutput"]["encoding"] == "BASE64"
    assert base64.b64decode(data["endpointOutput"]["data"]) == b"\x93NUMPY"
    assert "inferenceId" not in rec["eventMetadata"]


def test_input_only_capture_and_undecodable_text() -> None:
    cfg = config(CaptureOptions=[{"CaptureMode": "Input"}])
    rec = record(captured(cfg, input_body=b"\xff\xfe"))
    assert list(rec["captureData"]) == ["endpointInput"]
    assert rec["captureData"]["endpointInput"]["encoding"] == "BASE64"


def test_layout_is_endpoint_variant_and_utc_hour() -> None:
    assert hour_prefix("s3://b/p/", "ep", "v1", T) == "s3://b/p/ep/v1/2025/12/06/12"
    files = batch_files([captured(config()), captured(config()), captured(config(), variant="B")])
    assert sorted(count for _, _, count in files.values()) == [1, 2]
    for url, data, count in files.values():
        assert url.startswith("s3://bucket/capture/ep/")
        assert url.split("/")[-1].startswith("00-00-250-") and url.endswith(".jsonl")
        assert len([json.loads(line) for line in data.decode().splitlines()]) == count


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Input"}]}, "only once"),
        (
            {
                "CaptureContentTypeHeader": {
                    "CsvContentTypes": ["text/csv"],
                    "JsonContentTypes": ["text/csv"],
                }
            },
            "not both",
        ),
        ({"CaptureContentTypeHeader": {"CsvContentTypes": ["csv"]}}, "not a content type"),
    ],
)
def test_bad_configs_are_refused(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationException, match=message):
        config(**spec)


def test_summary_and_disabled() -> None:
    cfg = config(EnableCapture=False, KmsKeyId="key-1", InitialSamplingPercentage=20)
    assert cfg.summary() == {
        "EnableCapture": False,
        "CaptureStatus": "Stopped",
        "CurrentSamplingPercentage": 20,
        "DestinationS3Uri": "s3://bucket/capture",
        "KmsKeyId": "key-1",
    }
    assert parse_capture(None) is None


def test_full_buffer_drops_and_counts() -> None:
    buffer = CaptureBuffer(2)
    assert [buffer.offer(captured(config())) for _ in range(5)] == [True, True, False, False, False]
    assert buffer.dropped == 3
    assert len(buffer.drain()) == 2 and buffer.drain() == []


def test_writer_writes_files_and_counts_failures() -> None:
    written: dict[str, bytes] = {}

    def write(url: str, data: bytes) -> None:
        if "/broken/" in url:
            raise OSError("read-only")
        written[url] = data

    buffer = CaptureBuffer(10)
    writer = CaptureWriter(buffer, write, 1.0)
    buffer.offer(captured(config()))
    buffer.offer(captured(config(), endpoint="broken"))
    assert asyncio.run(writer.flush()) == 1
    assert buffer.dropped == 1
    assert len(written) == 1
