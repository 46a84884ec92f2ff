"""Replay before deploy: the report's arithmetic (no processes)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from modelhost.monitor.replay import Answer, Captured, compare, parse_captures
from modelhost.monitor.replay_run import endpoint_config


def _line(data: str, output: str | None, encoding: str = "CSV") -> str:
    capture = {
        "endpointInput": {
            "observedContentType": "text/csv",
            "mode": "INPUT",
            "data": data,
            "encoding": encoding,
        }
    }
    if output is not None:
        capture["endpointOutput"] = {
            "observedContentType": "text/csv",
            "mode": "OUTPUT",
            "data": output,
            "encoding": "CSV",
        }
    return json.dumps(
        {"captureData": capture, "eventMetadata": {"eventId": data}, "eventVersion": "0"}
    )


def test_bad_records_are_listed_and_skipped() -> None:
    text = "\n".join(
        [
            _line("1,2", "0.5"),
            "{not json",
            json.dumps({"captureData": {}}),
            _line("!!!", None, encoding="BASE64"),
            _line(base64.b64encode(b"3,4").decode(), "0.25", encoding="BASE64"),
        ]
    )
    records, bad = parse_captures([("f.jsonl", text)])
    assert [r.body for r in records] == [b"1,2", b"3,4"]
    assert [r.output for r in records] == [b"0.5", b"0.25"]
    assert [(b.source, b.line) for b in bad] == [("f.jsonl", 2), ("f.jsonl", 3), ("f.jsonl", 4)]
    assert "endpointInput" in bad[1].reason


def test_compare_counts_agreement_differences_and_errors() -> None:
    records = [Captured(str(i), "text/csv", b"x", f"0.{i}".encode()) for i in range(1, 5)]
    answers = [
        Answer(200, 1000.0, b"0.1"),  # exact
        Answer(200, 2000.0, b"0.2000001"),  # within the tolerance
        Answer(200, 3000.0, b"0.5"),  # 0.2 off
        Answer(500, 10.0, b"", "ModelError: boom"),
    ]
    report = compare(records, answers, tolerance=1e-3, baseline=[0.1, 0.2, 0.3])
    assert report["Records"] == 4
    assert report["ExactAgreement"] == 0.25
    assert report["NumericCompared"] == 3
    assert report["NumericAgreement"] == 2 / 3
    assert abs(report["NumericDifference"]["MaxAbs"] - 0.2) < 1e-9
    assert report["Candidate"]["ErrorRate"] == 0.25
    assert report["Candidate"]["Errors"] == [
        {"EventId": "4", "Status": 500, "Error": "ModelError: boom"}
    ]
    assert report["Candidate"]["LatencyP50Us"] == 2000.0
    assert set(report["OutputDrift"]) == {"Captured", "Baseline"}
    assert set(report["OutputDrift"]["Baseline"]) == {"ks", "ks_pvalue", "psi"}


def test_endpoint_config_puts_the_candidate_in_every_variant_and_drops_capture() -> None:
    template = {
        "EndpointConfigName": "prod",
        "ProductionVariants": [
            {"VariantName": "a", "ModelName": "old", "InstanceType": "ml.c5.xlarge"},
            {"VariantName": "b", "ModelName": "old2", "InstanceType": "ml.c5.xlarge"},
        ],
        "DataCaptureConfig": {"EnableCapture": True},
    }
    got = endpoint_config("replay-x", "cand", template)
    assert got["EndpointConfigName"] == "replay-x"
    assert [v["ModelName"] for v in got["ProductionVariants"]] == ["cand", "cand"]
    assert "DataCaptureConfig" not in got
    assert template["ProductionVariants"][0]["ModelName"] == "old"


def test_cli_refuses_an_endpoint_config_that_is_not_json(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from modelhost.cli import main

    capture = tmp_path / "c.jsonl"
    capture.write_text(_line("1,2", "0.5") + "\n")
    config = tmp_path / "config.json"
    config.write_text("{nope")
    args = ["replay", "--url", "http://127.0.0.1:9", "--home", str(tmp_path / "home")]
    args += ["--capture", str(capture), "--model", "m", "--endpoint-config", str(config)]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 2
    assert "--endpoint-config" in done.output
