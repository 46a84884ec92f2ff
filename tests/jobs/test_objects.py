"""Listing inputs and writing outputs on local disk (S3 is covered end to end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelhost.errors import ArtifactError
from modelhost.jobs.objects import ObjectIO


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    (tmp_path / "in" / "data-2").mkdir(parents=True)
    (tmp_path / "in" / "data.csv").write_text("1\n")
    (tmp_path / "in" / "data-2" / "x.csv").write_text("2\n")
    (tmp_path / "in" / "other.csv").write_text("3\n")
    return tmp_path


def test_prefix_listing_keeps_sub_paths(tree: Path) -> None:
    io = ObjectIO(None)
    assert [o.rel for o in io.list_inputs("S3Prefix", str(tree / "in"))] == [
        "data-2/x.csv",
        "data.csv",
        "other.csv",
    ]
    assert [o.rel for o in io.list_inputs("S3Prefix", str(tree / "in" / "data"))] == [
        "data-2/x.csv",
        "data.csv",
    ]
    one = io.list_inputs("S3Prefix", f"file://{tree}/in/other.csv")
    assert [(o.rel, o.size) for o in one] == [("other.csv", 2)]
    with pytest.raises(ArtifactError, match="no input objects"):
        io.list_inputs("S3Prefix", str(tree / "missing" / "x"))


def test_manifest(tree: Path) -> None:
    manifest = tree / "m.json"
    manifest.write_text(json.dumps([{"prefix": f"{tree}/in/"}, "other.csv", "data-2/x.csv"]))
    found = ObjectIO(None).list_inputs("ManifestFile", str(manifest))
    assert [(o.url, o.rel) for o in found] == [
        (f"{tree}/in/other.csv", "other.csv"),
        (f"{tree}/in/data-2/x.csv", "data-2/x.csv"),
    ]
    manifest.write_text(json.dumps(["no-prefix.csv"]))
    with pytest.raises(ArtifactError, match="must be a JSON array"):
        ObjectIO(None).list_inputs("ManifestFile", str(manifest))


def test_output_is_the_parts_in_order_under_the_relative_name(tmp_path: Path) -> None:
    parts = []
    for i, text in enumerate([b"a\n", b"b\n", b"c\n"]):
        parts.append(tmp_path / f"{i}.part")
        parts[-1].write_bytes(text)
    url = ObjectIO(None).write_output(str(tmp_path / "out"), "sub/x.csv", parts, tmp_path)
    assert url == str(tmp_path / "out" / "sub" / "x.csv.out")
    assert Path(url).read_bytes() == b"a\nb\nc\n"
    assert [p.name for p in (tmp_path / "out" / "sub").iterdir()] == ["x.csv.out"]
