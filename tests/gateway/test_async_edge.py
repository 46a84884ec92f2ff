"""InvokeEndpointAsync's header rules at the edge (no processes): bounds from botocore's
runtime model, exactly one of InputLocation and Body, locations kept out of home."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.errors import ValidationError
from modelhost.gateway.async_api import MAX_INLINE_BODY_BYTES, parse_submission
from modelhost.jobs.asyncinf.service import Submission
from modelhost.settings import Settings


def _raw(headers: dict[str, str]) -> dict[bytes, bytes]:
    prefix = "x-amzn-sagemaker-"
    return {(prefix + k.replace("_", "-")).encode(): v.encode() for k, v in headers.items()}


def _parse(tmp_path: Path, body: bytes = b"", **headers: str) -> Submission:
    return parse_submission("ep", _raw(headers), body, Settings(home=tmp_path / "home"))


def test_a_full_request_is_read_member_by_member(tmp_path: Path) -> None:
    sub = _parse(
        tmp_path,
        inputlocation="s3://bucket/in/x.csv",
        content_type="text/csv",
        accept="application/json",
        custom_attributes="trace=1",
        inference_id="abc 1",
        requestttlseconds="3600",
        invocationtimeoutseconds="900",
        s3outputpathextension="day/1",
        filename="x.json",
    )
    assert sub.__dict__ == {
        "endpoint": "ep",
        "input_location": "s3://bucket/in/x.csv",
        "payload": None,
        "content_type": "text/csv",
        "accept": "application/json",
        "custom_attributes": "trace=1",
        "inference_id": "abc 1",
        "ttl_s": 3600,
        "invocation_timeout_s": 900,
        "output_extension": "day/1",
        "filename": "x.json",
    }
    inline = _parse(tmp_path, b"1,2,3")
    assert inline.payload == b"1,2,3" and inline.input_location is None


@pytest.mark.parametrize(
    ("body", "headers", "words"),
    [
        (b"", {}, "exactly one of InputLocation"),
        (b"1", {"inputlocation": "s3://b/k"}, "exactly one of InputLocation"),
        (b"x" * (MAX_INLINE_BODY_BYTES + 1), {}, "less than or equal to 128000"),
        (b"", {"inputlocation": "https://example.com/x"}, "https:// is not supported"),
        (b"", {"inputlocation": "s3://b/k", "requestttlseconds": "59"}, "requestTTLSeconds"),
        (b"", {"inputlocation": "s3://b/k", "requestttlseconds": "x"}, "must be an integer"),
        (b"", {"inputlocation": "s3://b/k", "invocationtimeoutseconds": "3601"}, "3600"),
        (b"", {"inputlocation": "s3://b/k", "inference_id": " lead"}, "inferenceId"),
        (b"", {"inputlocation": "s3://b/k", "inference_id": "x" * 65}, "inferenceId"),
        (b"", {"inputlocation": "s3://b/k", "s3outputpathextension": "a/../b"}, "'..'"),
        (b"", {"inputlocation": "s3://b/k", "s3outputpathextension": "s3:x"}, "pattern"),
        (b"", {"inputlocation": "s3://b/k", "filename": "a/b"}, "filename"),
        (b"", {"inputlocation": "s3://b/k", "filename": "a.b.c"}, "filename"),
        (b"", {"inputlocation": "s3://b/k", "content_type": "t\u00e9xt"}, "ASCII"),
    ],
)
def test_bad_requests_are_refused_naming_the_member(
    tmp_path: Path, body: bytes, headers: dict[str, str], words: str
) -> None:
    with pytest.raises(ValidationError) as info:
        parse_submission("ep", _raw(headers), body, Settings(home=tmp_path / "home"))
    assert words in info.value.message


def test_an_input_in_the_servers_home_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "modelhost.db").write_bytes(b"secret")
    with pytest.raises(ValidationError) as info:
        _parse(tmp_path, inputlocation=str(home / "modelhost.db"))
    assert "state directory" in info.value.message
