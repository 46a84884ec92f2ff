"""ArtifactStore on local paths and file:// URLs: unpacking, caching, and refusing bad archives."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ArtifactError
from modelhost.settings import Settings
from modelhost.store import artifacts, unpack
from modelhost.store.artifacts import ArtifactStore

Entry = tuple[str, str, bytes | str | None]  # as conftest.tar_bytes takes them
TarBuilder = Callable[..., Path]

MODEL = [
    ("file", "./xgboost-model", b"booster-bytes"),
    ("dir", "./code", None),
    ("file", "./code/inference.py", b"def model_fn(d): ...\n"),
]


@pytest.fixture
def unpack_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Counts real unpacks (slowed a little so concurrent callers overlap)."""
    calls: list[Path] = []
    real = artifacts._unpack

    def counting(archive: Path, into: Path, label: str, *limits: Any) -> None:
        calls.append(into)
        time.sleep(0.05)
        real(archive, into, label, *limits)

    monkeypatch.setattr(artifacts, "_unpack", counting)
    return calls


def assert_model(path: Path) -> None:
    assert (path / "xgboost-model").read_bytes() == b"booster-bytes"
    assert (path / "code" / "inference.py").is_file()


def test_local_directory_is_used_in_place(tmp_path: Path, store: ArtifactStore) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "xgboost-model").write_bytes(b"x")
    assert store.fetch(str(model_dir)) == model_dir
    assert store.fetch(model_dir.as_uri()) == model_dir
    assert not (tmp_path / "home").exists()  # nothing copied into the cache


def test_local_tar_gz_is_unpacked_under_its_digest(
    make_tar: TarBuilder, store: ArtifactStore, settings: Settings
) -> None:
    archive = make_tar(MODEL)
    path = store.fetch(str(archive))
    assert path == settings.artifact_cache_dir / hashlib.sha256(archive.read_bytes()).hexdigest()
    assert_model(path)
    assert sorted(p.name for p in path.iterdir()) == ["code", "xgboost-model"]  # no marker inside


@pytest.mark.parametrize("name", ["model.tar", "model.tgz", "packed-without-suffix"])
def test_archive_detected_by_content_or_name(
    make_tar: TarBuilder, store: ArtifactStore, name: str
) -> None:
    assert_model(store.fetch(str(make_tar(MODEL, name=name, compress=name != "model.tar"))))


def test_file_url(make_tar: TarBuilder, store: ArtifactStore) -> None:
    archive = make_tar(MODEL)
    assert_model(store.fetch(archive.as_uri()))
    assert_model(store.fetch(f"file://localhost{archive}"))


def test_cache_is_reused_across_calls_and_instances(
    make_tar: TarBuilder, settings: Settings, unpack_calls: list[Path]
) -> None:
    archive = make_tar(MODEL)
    first = ArtifactStore(settings).fetch(str(archive))
    assert ArtifactStore(settings).fetch(str(archive)) == first
    assert len(unpack_calls) == 1


def test_a_store_from_explicit_values_shares_the_cache_and_applies_its_limits(
    make_tar: TarBuilder, settings: Settings, tmp_path: Path
) -> None:
    archive = make_tar(MODEL)
    explicit = ArtifactStore.from_values(settings.artifact_cache_dir)
    assert explicit.cache_dir == settings.artifact_cache_dir
    # Another store on the same cache directory finds what this one unpacked.
    assert ArtifactStore(settings).fetch(str(archive)) == explicit.fetch(str(archive))
    tight = ArtifactStore.from_values(
        tmp_path / "tight", limits=artifacts.UnpackLimits(max_members=1)
    )
    with pytest.raises(ArtifactError, match="artifact_max_members"):
        tight.fetch(str(archive))


def test_fetch_counted_tells_work_from_a_cache_hit(
    make_tar: TarBuilder, store: ArtifactStore, tmp_path: Path
) -> None:
    archive = make_tar(MODEL)
    first, worked = store.fetch_counted(str(archive))
    assert worked and store.fetch_counted(str(archive)) == (first, False)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    assert store.fetch_counted(str(model_dir)) == (model_dir, False)  # used in place


def test_concurrent_fetches_from_threads_share_one_unpack(
    make_tar: TarBuilder, store: ArtifactStore, unpack_calls: list[Path]
) -> None:
    archive = make_tar(MODEL)
    barrier = threading.Barrier(8)
    results: list[Path] = []

    def fetch() -> None:
        barrier.wait()
        results.append(store.fetch(str(archive)))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 8 and len(set(results)) == 1
    assert len(unpack_calls) == 1
    assert_model(results[0])


def test_concurrent_fetches_from_processes_share_one_unpack(
    make_tar: TarBuilder, tmp_path: Path
) -> None:
    archive = make_tar(MODEL)
    unpacked_by = tmp_path / "unpacked-by"
    unpacked_by.mkdir()
    script = textwrap.dedent(
        """
        import os, sys, time
        from pathlib import Path
        from modelhost.settings import Settings
        from modelhost.store import artifacts
        real = artifacts._unpack
        def slow(archive, into, label, *limits):
            Path(sys.argv[3], str(os.getpid())).touch()
            time.sleep(0.5)  # hold the entry long enough for the other process to collide
            real(archive, into, label, *limits)
        artifacts._unpack = slow
        print(artifacts.ArtifactStore(Settings(home=Path(sys.argv[1]))).fetch(sys.argv[2]))
        """
    )
    argv = [sys.executable, "-c", script, str(tmp_path / "home"), str(archive), str(unpacked_by)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert outputs[0] == outputs[1]
    assert len(list(unpacked_by.iterdir())) == 1
    assert_model(Path(outputs[0]))


def test_single_file_is_placed_alone_under_its_name(tmp_path: Path, store: ArtifactStore) -> None:
    (tmp_path / "a").mkdir()
    model = tmp_path / "a" / "xgboost-model"
    model.write_bytes(b"\x00binary booster")
    path = store.fetch(str(model))
    assert [p.name for p in path.iterdir()] == ["xgboost-model"]
    assert (path / "xgboost-model").read_bytes() == b"\x00binary booster"
    # Same bytes, another name: another entry, since loaders look files up by name.
    renamed = tmp_path / "model.joblib"
    renamed.write_bytes(model.read_bytes())
    assert [p.name for p in store.fetch(str(renamed)).iterdir()] == ["model.joblib"]


def test_gzip_of_a_single_file_is_kept_as_a_file(tmp_path: Path, store: ArtifactStore) -> None:
    model = tmp_path / "model.json.gz"
    model.write_bytes(gzip.compress(b'{"learner": {}}' * 100))
    path = store.fetch(str(model))
    assert [p.name for p in path.iterdir()] == ["model.json.gz"]


def test_stale_entry_without_marker_is_rebuilt(
    make_tar: TarBuilder, store: ArtifactStore, settings: Settings
) -> None:
    archive = make_tar(MODEL)
    path = store.fetch(str(archive))
    (settings.artifact_cache_dir / f"{path.name}.complete").unlink()  # a crash before marking
    (path / "xgboost-model").unlink()
    assert store.fetch(str(archive)) == path
    assert_model(path)


# --- refused archives ---------------------------------------------------------------------

SLIPS: dict[str, tuple[list[Entry], str, str]] = {
    "dotdot": ([("file", "../evil", b"x")], "../evil", "outside the model directory"),
    "deep-dotdot": ([("file", "a/../../evil", b"x")], "a/../../evil", "outside"),
    "absolute": ([("file", "/tmp/evil", b"x")], "/tmp/evil", "absolute path"),
    "symlink-absolute": ([("symlink", "passwd", "/etc/passwd")], "passwd", "absolute path"),
    "symlink-up": ([("symlink", "up", "../..")], "up", "links outside"),
    "hardlink-outside": ([("hardlink", "hl", "../outside.txt")], "hl", "links outside"),
    "hardlink-absolute": ([("hardlink", "hl", "/etc/passwd")], "hl", "absolute path"),
    "symlink-chain": (
        [("symlink", "s", "."), ("symlink", "t", "s/..")],
        "t",
        "links outside",
    ),
    "write-through-symlink": (
        [("dir", "sub", None), ("symlink", "d", "sub"), ("file", "d/evil", b"x")],
        "d/evil",
        "through a symlink",
    ),
    "fifo": ([("fifo", "pipe", None)], "pipe", "device or FIFO"),
}


@pytest.mark.parametrize("case", list(SLIPS))
def test_unsafe_archives_are_refused_and_leave_nothing(
    case: str,
    tmp_path: Path,
    make_tar: TarBuilder,
    store: ArtifactStore,
    leftovers: Callable[[], list[str]],
) -> None:
    entries, member, reason = SLIPS[case]
    (tmp_path / "outside.txt").write_text("not yours")
    archive = make_tar([("file", "ok.bin", b"fine"), *entries])
    with pytest.raises(ArtifactError) as caught:
        store.fetch(str(archive))
    message = caught.value.message
    assert message.startswith(f"ModelDataUrl {archive}: archive member '{member}' ")
    assert reason in message
    assert "tar -czf model.tar.gz -C model_dir ." in message or "tar -czhf" in message
    assert leftovers() == []
    assert not any(p.name == "evil" for p in tmp_path.rglob("*"))


@pytest.mark.parametrize(
    "case",
    ["dotdot", "symlink-absolute", "symlink-up", "hardlink-outside", "symlink-chain", "fifo"],
)
def test_data_filter_alone_refuses_and_is_translated(
    case: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    make_tar: TarBuilder,
    store: ArtifactStore,
    leftovers: Callable[[], list[str]],
) -> None:
    # Second line of defence: without our own checks, tarfile's data filter still refuses
    # these (not a leading '/', which it strips instead; the own check covers that).
    monkeypatch.setattr(unpack, "_check_members", lambda members, label: None)
    entries, member, _ = SLIPS[case]
    (tmp_path / "outside.txt").write_text("not yours")
    archive = make_tar([("file", "ok.bin", b"fine"), *entries])
    with pytest.raises(ArtifactError, match=f"archive member '{member}'"):
        store.fetch(str(archive))
    assert leftovers() == []


def test_links_inside_the_archive_are_kept(make_tar: TarBuilder, store: ArtifactStore) -> None:
    archive = make_tar(
        [
            ("dir", "blobs", None),
            ("file", "blobs/abc", b"weights"),
            ("dir", "snap", None),
            ("symlink", "snap/model.bin", "../blobs/abc"),
            ("hardlink", "copy.bin", "blobs/abc"),
        ]
    )
    path = store.fetch(str(archive))
    assert (path / "snap" / "model.bin").read_bytes() == b"weights"
    assert (path / "copy.bin").read_bytes() == b"weights"


def test_corrupt_gzip(tmp_path: Path, store: ArtifactStore, leftovers: Callable[..., list]) -> None:
    for name in ("model.tar.gz", "model"):
        bad = tmp_path / name
        bad.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(64))
        with pytest.raises(ArtifactError, match=r"is not a valid \.tar\.gz archive \(.+\)"):
            store.fetch(str(bad))
    assert leftovers() == []


def test_damaged_deflate_stream(
    make_tar: TarBuilder, store: ArtifactStore, leftovers: Callable[..., list]
) -> None:
    archive = make_tar([("file", "weights", os.urandom(200_000))])
    data = bytearray(archive.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    archive.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"is not a valid \.tar\.gz archive"):
        store.fetch(str(archive))
    assert leftovers() == []


@pytest.mark.parametrize("name", ["model.tar.gz", "model.tar"])
def test_truncated_archive(
    name: str, make_tar: TarBuilder, store: ArtifactStore, leftovers: Callable[..., list]
) -> None:
    archive = make_tar(
        [("file", "a", b"small"), ("file", "weights", os.urandom(200_000))],
        name=name,
        compress=name.endswith(".gz"),
    )
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=rf"ModelDataUrl .*{name} is not a valid \.tar\.gz"):
        store.fetch(str(archive))
    assert leftovers() == []


# --- bad locations ------------------------------------------------------------------------


def test_missing_path(tmp_path: Path, store: ArtifactStore) -> None:
    missing = tmp_path / "nope" / "model.tar.gz"
    with pytest.raises(ArtifactError, match="does not exist; check the path"):
        store.fetch(str(missing))
    with pytest.raises(ArtifactError, match="does not exist"):
        store.fetch(missing.as_uri())


@pytest.mark.parametrize(
    "url", ["https://example.com/model.tar.gz", "gs://bucket/model.tar.gz", "hdfs://nn/m"]
)
def test_unsupported_scheme(url: str, store: ArtifactStore) -> None:
    scheme = url.split("://")[0]
    with pytest.raises(ArtifactError, match=f"unsupported scheme '{scheme}://'; use an s3://"):
        store.fetch(url)


def test_file_url_on_another_host(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError, match="file:///abs/path"):
        store.fetch("file://otherhost/models/model.tar.gz")


def test_unreadable_cache_is_reported(
    make_tar: TarBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    with pytest.raises(ArtifactError, match="write the artifact cache"):
        ArtifactStore(Settings(home=home)).fetch(str(make_tar(MODEL)))


def test_empty_url(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError, match="ModelDataUrl is empty"):
        store.fetch("")


def test_crashed_builders_scratch_is_swept(
    make_tar: TarBuilder, store: ArtifactStore, settings: Settings
) -> None:
    archive = make_tar(MODEL)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    stale = settings.artifact_cache_dir / f".tmp-{digest}-crashed"
    (stale / "half").mkdir(parents=True)
    assert_model(store.fetch(str(archive)))
    assert not stale.exists()
