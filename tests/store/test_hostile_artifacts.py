"""Decompression bombs and location confinement (pure checks, no server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modelhost.errors import ArtifactError, ValidationException
from modelhost.settings import Settings
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.locations import confine, resolve_target_model, within
from tests.store.support import TarBuilder

MIB = 1024 * 1024


def test_a_zip_bomb_is_refused_before_it_is_written(
    make_tar: TarBuilder, store: ArtifactStore, leftovers: Callable[[], list[str]]
) -> None:
    archive = make_tar([("file", "zeros.bin", bytes(64 * MIB))])
    assert archive.stat().st_size < MIB  # ~1000:1
    with pytest.raises(ArtifactError, match="decompression bomb"):
        store.fetch(str(archive))
    assert leftovers() == []


def test_size_and_member_caps(make_tar: TarBuilder, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home", artifact_max_unpacked_bytes=MIB, artifact_max_members=3
    )
    store = ArtifactStore(settings)
    big = make_tar([("file", "a.bin", bytes(2 * MIB))], name="big.tar")
    with pytest.raises(ArtifactError, match="artifact_max_unpacked_bytes"):
        store.fetch(str(big))
    many = make_tar([("file", f"f{i}", b"x") for i in range(5)], name="many.tar.gz")
    with pytest.raises(ArtifactError, match="artifact_max_members"):
        store.fetch(str(many))
    fine = make_tar([("file", "xgboost-model", b"ok")], name="fine.tar.gz")
    assert (store.fetch(str(fine)) / "xgboost-model").read_bytes() == b"ok"


@pytest.mark.parametrize(
    "target",
    [
        "../other/model.tar.gz",
        "a/../../b.tar.gz",
        "/etc/passwd",
        "s3://other-bucket/model.tar.gz",
        "%2e%2e/escape.tar.gz",
        "a\\..\\b",
        "~/x",
        "a\x00b",
        "",
        "x" * 1025,
    ],
)
def test_target_model_cannot_escape_its_prefix(target: str) -> None:
    with pytest.raises(ValidationException, match="targetModel"):
        resolve_target_model("s3://bucket/models/", target)


def test_target_model_inside_its_prefix() -> None:
    assert resolve_target_model("s3://bucket/models/", "a/b.tar.gz") == (
        "s3://bucket/models/a/b.tar.gz"
    )
    assert resolve_target_model("/srv/models", "m-1.tar.gz") == "/srv/models/m-1.tar.gz"


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("s3://bucket/in/x.csv", True),
        ("S3://bucket/in/x.csv", True),
        ("s3://bucket/in", True),
        ("s3://bucket-evil/in/x.csv", False),
        ("s3://other-bucket/in/x.csv", False),
        ("s3://bucket/input/x.csv", False),
        ("file:///srv/data/a.csv", True),
        ("/srv/data/a.csv", True),
        ("/srv/database/a.csv", False),
    ],
)
def test_input_locations_are_confined(uri: str, ok: bool) -> None:
    allowed = ["s3://bucket/in/", "/srv/data"]
    if ok:
        assert confine(uri, allowed, "inputLocation") == uri
    else:
        with pytest.raises(ValidationException, match="inputLocation"):
            confine(uri, allowed, "inputLocation")


def test_dot_segments_and_the_home_directory(tmp_path: Path) -> None:
    with pytest.raises(ValidationException, match=r"'\.\.'"):
        confine("s3://bucket/in/../secret/x", ["s3://bucket/in/"], "s3Uri")
    home = tmp_path / "home"
    (home / "auth").mkdir(parents=True)
    (tmp_path / "link").symlink_to(home)
    for uri in (str(home / "auth"), f"file://{home}/modelhost.db", str(tmp_path / "link/auth")):
        with pytest.raises(ValidationException, match="state directory"):
            confine(uri, [], "modelDataUrl", [home])
    assert confine(str(tmp_path / "model"), [], "modelDataUrl", [home])
    assert within("s3://b/p/x", "s3://b/p") and not within("s3://b/px", "s3://b/p")
