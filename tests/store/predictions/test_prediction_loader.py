"""load_transform_output: a transform job's inputs and `.out` outputs into a store."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ValidationException
from modelhost.settings import Settings
from modelhost.store.predictions import ValueFormat, load_transform_output, open_prediction_store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def get(settings: Settings, store: str, key: str) -> str | None:
    backend = open_prediction_store(settings)
    try:
        return backend.get(store, key)[1]
    finally:
        backend.close()


def test_csv_by_column_index_over_a_prefix(tmp_path: Path, settings: Settings) -> None:
    write(tmp_path / "in/part-1.csv", "c1,0.5,3\nc2,0.7,1\n\n")  # a blank line is no record
    write(tmp_path / "in/2024/part-2.csv", 'c3,0.1,2\n"c,4",0.2,9\n')
    write(tmp_path / "out/part-1.csv.out", "0.91\n0.12\n")
    write(tmp_path / "out/2024/part-2.csv.out", "0.33\n0.44\n")
    run = load_transform_output("churn", 0, str(tmp_path / "in"), str(tmp_path / "out"),
                                "text/csv", settings)  # fmt: skip
    assert (run.store, run.key_count, run.loaded) == ("churn", 4, True)
    assert run.run_id.startswith("run-") and run.value_format is ValueFormat.TEXT
    assert get(settings, "churn", "c2") == "0.12"
    assert get(settings, "churn", "c,4") == "0.44"


def test_csv_by_header_name_and_reload_is_idempotent(tmp_path: Path, settings: Settings) -> None:
    write(tmp_path / "in/data.csv", "State,customer_id,x\nKS,a-1,1\nOH,a-2,2\n")
    write(tmp_path / "out/data.csv.out", "0.1\n0.2\n")
    args = ("churn", "customer_id", f"file://{tmp_path}/in", str(tmp_path / "out"))
    first = load_transform_output(*args, settings=settings)
    assert first.key_count == 2 and get(settings, "churn", "a-2") == "0.2"
    again = load_transform_output(*args, settings=settings)
    assert (again.loaded, again.run_id) == (False, first.run_id)
    # A new job output is a new run that replaces the old one.
    write(tmp_path / "out/data.csv.out", "0.3\n0.4\n")
    third = load_transform_output(*args, settings=settings)
    assert third.loaded and third.run_id != first.run_id
    assert get(settings, "churn", "a-2") == "0.4"


def test_json_lines_with_json_output_and_gzip_input(tmp_path: Path, settings: Settings) -> None:
    lines = "".join(json.dumps({"id": i, "f": [i, i]}) + "\n" for i in range(3))
    write(tmp_path / "in/a.jsonl.gz", gzip.compress(lines.encode()))
    write(tmp_path / "out/a.jsonl.gz.out", '{"score": 0.5}\n{"score": 0.6}\n[1, 2]\n')
    run = load_transform_output("scores", "id", str(tmp_path / "in"), str(tmp_path / "out"),
                                "application/jsonlines", settings)  # fmt: skip
    assert run.key_count == 3 and run.value_format is ValueFormat.JSON
    assert get(settings, "scores", "1") == '{"score": 0.6}'
    assert get(settings, "scores", "2") == "[1, 2]"


def test_csv_input_json_output_single_file(tmp_path: Path, settings: Settings) -> None:
    write(tmp_path / "in/one.csv", "k1,1\nk2,2\n")
    write(tmp_path / "out/one.csv.out", '{"p": 1}\n{"p": 2}\n')
    run = load_transform_output("one", "0", str(tmp_path / "in/one.csv"), str(tmp_path / "out"),
                                settings=settings, accept="application/jsonlines")  # fmt: skip
    assert run.value_format is ValueFormat.JSON and get(settings, "one", "k2") == '{"p": 2}'


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("0.1\n", "has fewer lines than .*data.csv has records \\(1\\)"),
        ("0.1\n0.2\n0.3\n", "has more lines than .*data.csv has records \\(2\\)"),
        (None, "No output for input .*data.csv: expected .*data.csv.out"),
    ],
)
def test_outputs_must_match_inputs_line_for_line(
    tmp_path: Path, settings: Settings, output: str | None, message: str
) -> None:
    write(tmp_path / "in/data.csv", "k1,1\nk2,2\n")
    if output is not None:
        write(tmp_path / "out/data.csv.out", output)
    with pytest.raises(ValidationException, match=message):
        load_transform_output("bad", 0, str(tmp_path / "in"), str(tmp_path / "out"),
                              settings=settings)  # fmt: skip
    assert open_prediction_store(settings).describe("bad") is None  # nothing half-loaded


def test_bad_arguments_are_named(tmp_path: Path, settings: Settings) -> None:
    write(tmp_path / "in/data.csv", "id,x\nk1,1\n")
    write(tmp_path / "out/data.csv.out", "0.1\n")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"key_column": "customer"}, "Key column 'customer' is not in the header"),
        ({"key_column": 5, "has_header": True}, "has 2 columns; key column 5 is missing"),
        ({"key_column": 0, "content_type": "image/png"}, "ContentType 'image/png'"),
        ({"key_column": 0, "store": "no_underscores"}, "storeName"),
        ({"key_column": 0, "run_id": "a b"}, "runId"),
    ]
    for extra, message in cases:
        kwargs: dict[str, Any] = {
            "store": "s1",
            "input_location": str(tmp_path / "in"),
            "output_location": str(tmp_path / "out"),
            "settings": settings,
            **extra,
        }
        with pytest.raises(ValidationException, match=message):
            load_transform_output(**kwargs)
    with pytest.raises(Exception, match="does not exist"):
        load_transform_output("s1", 0, str(tmp_path / "nowhere"), str(tmp_path / "out"),
                              settings=settings)  # fmt: skip


def test_s3_locations(s3: Any) -> None:
    s3.put("batch/in/day-1.csv", b"u1,3\nu2,4\n")
    s3.put("batch/in/day-2.csv", b"u3,5\n")
    s3.put("batch/out/day-1.csv.out", b"0.25\n0.75\n")
    s3.put("batch/out/day-2.csv.out", b"0.5\n")
    bucket = s3.bucket
    run = load_transform_output("web", 0, f"s3://{bucket}/batch/in/", f"s3://{bucket}/batch/out",
                                settings=s3.settings)  # fmt: skip
    assert run.key_count == 3
    assert get(s3.settings, "web", "u2") == "0.75"
    assert get(s3.settings, "web", "u3") == "0.5"
    again = load_transform_output("web", 0, f"s3://{bucket}/batch/in/",
                                  f"s3://{bucket}/batch/out", settings=s3.settings)  # fmt: skip
    assert again.loaded is False
