"""The load test's pure parts: the phase schedule, payload rows, figures from Locust's
counters, the report's table and charts. No processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.errors import ValidationException
from modelhost.loadtest.charts import chart, nice_ticks
from modelhost.loadtest.html_report import render
from modelhost.loadtest.payloads import load_payloads
from modelhost.loadtest.report import table
from modelhost.loadtest.spec import (
    LoadSpec,
    constant_phase,
    parse_phases,
    peak_users,
    total_duration_s,
    users_at,
)
from modelhost.loadtest.stats import Sample, errors_by_code, percentile, summary, timeline


def test_phases_follow_inference_recommenders_members() -> None:
    phases = parse_phases(
        '[{"InitialNumberOfUsers": 2, "SpawnRate": 60, "DurationInSeconds": 10},'
        ' {"InitialNumberOfUsers": 5, "SpawnRate": 0, "DurationInSeconds": 5}]'
    )
    assert total_duration_s(phases) == 15
    assert users_at(phases, 0) == 2
    assert users_at(phases, 3.5) == 5  # SpawnRate is users per minute: one more each second
    assert users_at(phases, 10) == 5
    assert users_at(phases, 14.9) == 5
    assert users_at(phases, 15) is None
    assert peak_users(phases) == 12


def test_the_simple_form_ramps_to_its_users_and_stays() -> None:
    phases = (constant_phase(4, 2, 10),)
    assert [users_at(phases, t) for t in (0, 0.5, 1, 2, 9)] == [1, 2, 3, 4, 4]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("[]", "list of 1 to 100"),
        ('[{"InitialNumberOfUsers": 1, "SpawnRate": 1}]', "missing DurationInSeconds"),
        ('[{"InitialNumberOfUsers": -1, "SpawnRate": 1, "DurationInSeconds": 5}]', "Initial"),
        ('[{"InitialNumberOfUsers": 1, "SpawnRate": 1, "DurationInSeconds": 0}]', "Duration"),
        ('[{"InitialNumberOfUsers": 1, "SpawnRate": 1, "DurationInSeconds": 5, "X": 1}]', "X"),
        ('[{"InitialNumberOfUsers": 0, "SpawnRate": 0, "DurationInSeconds": 5}]', "needs users"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_phases_name_the_field(raw: str, field: str) -> None:
    with pytest.raises(ValidationException, match=field):
        parse_phases(raw)


def test_the_spec_round_trips_and_is_written_for_its_owner_only(tmp_path: Path) -> None:
    spec = LoadSpec("ep", (constant_phase(2, 1, 5),), "p.csv", secret_access_key="s")
    path = spec.write(tmp_path / "spec.json")
    assert path.stat().st_mode & 0o077 == 0
    assert LoadSpec.from_json(path.read_text()) == spec


def test_csv_rows_with_a_header_and_a_target_model_column(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("State,a,b\nCA,1,2\nNY,3,4\n")
    rows = load_payloads(path, target_model_column="State")
    assert [(r.body, r.target_model, r.content_type) for r in rows] == [
        (b"1,2", "CA.tar.gz", "text/csv"),
        (b"3,4", "NY.tar.gz", "text/csv"),
    ]
    plain = load_payloads(path)
    assert plain[0].body == b"CA,1,2"  # no column: the row as it is


def test_headerless_csv_and_a_column_by_index(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("1,2,3\n4,5,6\n")
    rows = load_payloads(path, target_model_column="0", target_model_template="m-{}.tar.gz")
    assert rows[0].body == b"2,3" and rows[0].target_model == "m-1.tar.gz"
    with pytest.raises(ValidationException, match="not a column"):
        load_payloads(path, target_model_column="State")


def test_jsonl_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"State": "TX", "x": [1, 2]}\n\n{"State": "CA.tar.gz", "x": [3]}\n')
    rows = load_payloads(path, target_model_column="State")
    assert rows[0].body == b'{"x":[1,2]}' and rows[0].content_type == "application/json"
    assert [r.target_model for r in rows] == ["TX.tar.gz", "CA.tar.gz"]
    with pytest.raises(ValidationException, match="no member"):
        load_payloads(path, target_model_column="Region")


def test_payload_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationException, match="does not exist"):
        load_payloads(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValidationException, match="no rows"):
        load_payloads(tmp_path / "empty.csv")


def test_percentiles_of_a_histogram() -> None:
    hist = {10: 50, 20: 40, 100: 9, 500: 1}
    assert percentile(hist, 0.5) == 10
    assert percentile(hist, 0.9) == 20
    assert percentile(hist, 0.99) == 100
    assert percentile(hist, 1.0) == 500
    assert percentile({}, 0.5) is None


def test_the_timeline_has_each_intervals_own_figures() -> None:
    samples = [
        Sample(100.0, 0, 0, 0, {}),
        Sample(101.0, 2, 10, 1, {5: 10}),
        Sample(103.0, 4, 30, 1, {5: 10, 50: 20}),
    ]
    points = timeline(samples)
    assert [p["ElapsedSeconds"] for p in points] == [1.0, 3.0]
    assert points[0]["RequestsPerSecond"] == 10 and points[0]["FailuresPerSecond"] == 1
    assert points[1]["RequestsPerSecond"] == 10 and points[1]["p50"] == 50  # not 5: its own
    assert points[1]["Users"] == 4


def test_summary_and_table() -> None:
    errors = errors_by_code([("ModelError", 2), ("ThrottlingException", 5), ("ModelError", 1)])
    assert list(errors.items()) == [("ThrottlingException", 5), ("ModelError", 3)]
    s = summary(Sample(0, 1, 100, 8, {10: 90, 40: 10}), 10.0, 41.5, errors)
    assert s["RequestsPerSecond"] == 10
    assert s["LatencyMs"] == {"p50": 10, "p90": 10, "p99": 40, "max": 41.5}
    result = {"Endpoint": "ep", "Workers": 0, "Summary": s, "Timeline": [], "StartTime": 0}
    text = table(result)
    assert "p99 ms" in text and "ThrottlingException" in text and "41.5" in text
    html = render(result)
    assert "<svg" in html and "No endpoint metrics" in html


def test_charts_are_inline_svg() -> None:
    svg = chart("t", {"a": [(0, 1), (1, 3), (2, 2)], "b": []})
    assert svg.startswith("<svg") and "<polyline" in svg and svg.endswith("</svg>")
    assert "no data" in chart("t", {"a": []})
    assert nice_ticks(0, 7) == [0, 2, 4, 6, 8]
