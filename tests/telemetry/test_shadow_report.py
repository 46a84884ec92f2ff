"""The shadow report's parsing and arithmetic, on hand-made pairs."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from modelhost.telemetry.shadow_report import (
    append_pair,
    capture_path,
    parse_numbers,
    read_pairs,
    report,
    side,
    variant_report,
)


@pytest.mark.parametrize(
    ("body", "numbers"),
    [
        (b"0.25", [0.25]),
        (b"0.1,0.2\n0.3", [0.1, 0.2, 0.3]),
        (b'{"predictions": [{"score": 1}, {"score": 2.5}], "model": "v2"}', [1.0, 2.5]),
        (b"[[1, 2], [3]]", [1.0, 2.0, 3.0]),
        (b"", None),
        (b"not numbers", None),
        (b'{"label": "yes"}', None),
        (b"NaN", None),
        (b"\xff\xfe", None),
        (None, None),
    ],
)
def test_parse_numbers(body: bytes | None, numbers: list[float] | None) -> None:
    assert parse_numbers(body) == numbers


def _pair(prod: tuple[int | None, float, bytes], shadow: tuple[int | None, float, bytes]) -> Any:
    return {
        "inference_id": "x",
        "time": 0.0,
        "production": side("Prod", prod[0], prod[1], "text/csv", prod[2]),
        "shadow": side("Shadow", shadow[0], shadow[1], "text/csv", shadow[2]),
    }


def test_variant_report_agreement_latency_and_errors() -> None:
    pairs = [
        _pair((200, 100.0, b"0.5"), (200, 300.0, b"0.5")),  # exact
        _pair((200, 200.0, b"0.5"), (200, 400.0, b"0.5000001")),  # within tolerance
        _pair((200, 300.0, b"0.5"), (200, 500.0, b"0.9")),  # disagrees
        _pair((200, 400.0, b"0.5"), (500, 600.0, b"boom")),  # shadow error, not numeric
        _pair((200, 500.0, b"0.5"), (None, 60e6, b"")),  # shadow never answered
    ]
    out = variant_report(pairs, tolerance=1e-6)
    assert out["Pairs"] == 5
    assert out["ExactAgreement"] == pytest.approx(1 / 5)
    assert out["NumericCompared"] == 3 and out["NumericUnparsed"] == 2
    assert out["NumericAgreement"] == pytest.approx(2 / 3)
    assert out["Production"]["ErrorRate"] == 0.0
    assert out["Shadow"]["ErrorRate"] == pytest.approx(2 / 5)
    assert out["Production"]["LatencyP50Us"] == 300.0
    assert out["Production"]["LatencyP99Us"] == 500.0
    # Latency only counts answers; the one that never came is an error instead.
    assert out["Shadow"]["LatencyP99Us"] == 600.0


def test_empty_report_has_no_rates() -> None:
    out = variant_report([], tolerance=0.0)
    assert out["Pairs"] == 0 and out["ExactAgreement"] is None
    assert out["Shadow"]["LatencyP50Us"] is None


def test_binary_bodies_round_trip_and_torn_lines_are_skipped(tmp_path: Path) -> None:
    blob = bytes(range(256))
    record = side("Shadow", 200, 10.0, "application/octet-stream", blob)
    assert record["encoding"] == "base64" and base64.b64decode(record["body"]) == blob
    path = capture_path(tmp_path, "ep", "Shadow", 0.0)
    append_pair(path, _pair((200, 1.0, b"1"), (200, 2.0, b"1")))
    with path.open("a") as f:
        f.write('{"inference_id": "torn"')  # a crash mid-write
    assert len(read_pairs(tmp_path, "ep", "Shadow")) == 1
    out = report(tmp_path, "ep", 0.0)
    assert [v["VariantName"] for v in out["ShadowVariants"]] == ["Shadow"]
    assert out["ShadowVariants"][0]["ExactAgreement"] == 1.0
    assert report(tmp_path, "missing", 0.0)["ShadowVariants"] == []
