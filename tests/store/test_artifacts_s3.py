"""ArtifactStore against a real S3 API (moto's server on 127.0.0.1), and fetch_source."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.errors import ArtifactError
from modelhost.settings import Settings
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.s3 import S3Client

MODEL = [("file", "xgboost-model", b"booster-bytes"), ("file", "code/inference.py", b"#\n")]


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keys downloaded from S3, in order."""
    seen: list[str] = []
    real = S3Client.download

    def counting(self: S3Client, bucket: str, obj: Any, dest: Path, label: str) -> str:
        seen.append(obj.key)
        return real(self, bucket, obj, dest, label)

    monkeypatch.setattr(S3Client, "download", counting)
    return seen


def files_under(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_s3_tar_gz_is_unpacked_and_cached_by_etag(
    s3: Any, tar_data: Callable[..., bytes], downloads: list[str]
) -> None:
    body = tar_data(MODEL)
    url = s3.put("models/churn/model.tar.gz", body)
    path = s3.store.fetch(url)
    assert path.name == hashlib.sha256(body).hexdigest()
    assert files_under(path) == {"xgboost-model": b"booster-bytes", "code/inference.py": b"#\n"}
    assert s3.store.fetch(url) == path
    assert ArtifactStore(s3.settings).fetch(url) == path  # another process: same cache
    assert downloads == ["models/churn/model.tar.gz"]  # later fetches cost only a HEAD
    assert s3.store.fetch_counted(url) == (path, False)  # a cache hit: no download
    # New bytes under the same key: new ETag, new download, new directory.
    s3.put("models/churn/model.tar.gz", tar_data([("file", "xgboost-model", b"v2")]))
    again = s3.store.fetch(url)
    assert again != path and files_under(again) == {"xgboost-model": b"v2"}


def test_s3_single_file(s3: Any) -> None:
    url = s3.put("models/xgboost-model", b"\x00raw booster")
    path = s3.store.fetch(url)
    assert files_under(path) == {"xgboost-model": b"\x00raw booster"}


@pytest.mark.parametrize("suffix", ["/", ""])
def test_s3_prefix_downloads_every_object(s3: Any, downloads: list[str], suffix: str) -> None:
    s3.put("models/llm/", b"")  # the folder placeholder a console makes
    s3.put("models/llm/config.json", b"{}")
    s3.put("models/llm/weights/part-0.bin", b"0" * 1000)
    s3.put("models/llm/weights/", b"")
    s3.put("models/llm-other/not-mine.bin", b"x")  # shares the string prefix, not the folder
    path = s3.store.fetch(f"s3://{s3.bucket}/models/llm{suffix}")
    assert files_under(path) == {"config.json": b"{}", "weights/part-0.bin": b"0" * 1000}
    assert s3.store.fetch(f"s3://{s3.bucket}/models/llm/") == path
    assert len(downloads) == 2  # the second fetch matched the listing digest


@pytest.mark.parametrize("bad", ["models/p/a//b", "models/p/./x", "models/p/../y"])
def test_s3_prefix_refuses_keys_that_are_not_plain_paths(
    s3: Any, bad: str, leftovers: Callable[[], list[str]]
) -> None:
    s3.put("models/p/ok.bin", b"1")
    s3.put(bad, b"2")
    with pytest.raises(ArtifactError, match=f"object key '{bad}' cannot become a file"):
        s3.store.fetch(f"s3://{s3.bucket}/models/p/")
    assert leftovers() == []


def test_s3_missing_key_bucket_and_prefix(s3: Any) -> None:
    with pytest.raises(ArtifactError, match=r"model\.tar\.gz does not exist as an object; upload"):
        s3.store.fetch(f"s3://{s3.bucket}/nope/model.tar.gz")
    with pytest.raises(ArtifactError, match="bucket 'no-such-bucket-here' does not exist"):
        s3.store.fetch("s3://no-such-bucket-here/model.tar.gz")
    with pytest.raises(ArtifactError, match="no objects under s3://"):
        s3.store.fetch(f"s3://{s3.bucket}/empty/")
    with pytest.raises(ArtifactError, match="needs a bucket"):
        s3.store.fetch("s3:///model.tar.gz")


def test_s3_corrupt_archive_leaves_nothing(s3: Any) -> None:
    url = s3.put("broken/model.tar.gz", b"\x1f\x8b\x08\x00not really gzip")
    with pytest.raises(ArtifactError, match=r"^ModelDataUrl s3://.* is not a valid \.tar\.gz"):
        s3.store.fetch(url)
    root = s3.settings.artifact_cache_dir
    assert sorted(p.name for p in root.iterdir()) == [".locks"]


def test_s3_tar_slip_is_refused(s3: Any, tar_data: Callable[..., bytes]) -> None:
    url = s3.put("evil/model.tar.gz", tar_data([("file", "../../etc/x", b"x")]))
    with pytest.raises(ArtifactError) as caught:
        s3.store.fetch(url)
    assert caught.value.message == (
        f"ModelDataUrl {url}: archive member '../../etc/x' would be written outside the model "
        "directory; rebuild the archive with paths relative to its root "
        "(tar -czf model.tar.gz -C model_dir .)"
    )


def test_no_credentials(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    store = ArtifactStore(s3.settings)
    with pytest.raises(ArtifactError, match="no AWS credentials to read s3://"):
        store.fetch(f"s3://{s3.bucket}/model.tar.gz")


def test_unreachable_endpoint(s3: Any, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = ArtifactStore(Settings(home=tmp_path / "h", s3_endpoint_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(ArtifactError, match=r"cannot reach the S3 endpoint .*S3_ENDPOINT_URL"):
        store.fetch("s3://bucket/model.tar.gz")


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("AccessDenied", 403, "access denied to s3://b/k; grant .* s3:GetObject"),
        ("403", 403, "access denied"),
        ("InvalidAccessKeyId", 403, "rejected the server's credentials"),
        ("PreconditionFailed", 412, "changed while it was read; retry"),
        ("SlowDown", 503, "S3 answered SlowDown"),
    ],
)
def test_client_errors_are_translated(code: str, status: int, expected: str) -> None:
    exc = ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )
    error = S3Client(None).error(exc, "s3://b/k", "ModelDataUrl s3://b/k")
    assert error.message.startswith("ModelDataUrl s3://b/k: ")
    assert re.search(expected, error.message)


# --- fetch_source (ModelDataSource.S3DataSource) -------------------------------------------


def source(uri: str, data_type: str, compression: str) -> dict[str, str]:
    return {"S3Uri": uri, "S3DataType": data_type, "CompressionType": compression}


def test_source_s3object_gzip_is_unpacked(s3: Any, tar_data: Callable[..., bytes]) -> None:
    url = s3.put("m/model.tar.gz", tar_data(MODEL))
    path = s3.store.fetch_source(source(url, "S3Object", "Gzip"))
    assert files_under(path)["xgboost-model"] == b"booster-bytes"


def test_source_s3object_none_is_one_file_even_if_a_tar(
    s3: Any, tar_data: Callable[..., bytes]
) -> None:
    body = tar_data(MODEL)
    url = s3.put("m/model.tar.gz", body)
    path = s3.store.fetch_source(source(url, "S3Object", "None"))
    assert files_under(path) == {"model.tar.gz": body}
    unpacked = s3.store.fetch_source(source(url, "S3Object", "Gzip"))
    assert unpacked != path  # the mode is part of the cache reference


def test_source_s3prefix_none(s3: Any) -> None:
    s3.put("m/dir/a.bin", b"a")
    s3.put("m/dir/b/c.bin", b"c")
    path = s3.store.fetch_source(source(f"s3://{s3.bucket}/m/dir/", "S3Prefix", "None"))
    assert files_under(path) == {"a.bin": b"a", "b/c.bin": b"c"}


def test_source_s3object_gzip_on_a_plain_file(s3: Any) -> None:
    url = s3.put("m/xgboost-model", b"not an archive at all")
    with pytest.raises(
        ArtifactError, match=r"^ModelDataSource\.S3DataSource\.S3Uri .* not a valid"
    ):
        s3.store.fetch_source(source(url, "S3Object", "Gzip"))


def test_source_s3object_on_a_prefix(s3: Any) -> None:
    s3.put("m/dir/a.bin", b"a")
    with pytest.raises(ArtifactError, match="it is a prefix: use S3DataType S3Prefix"):
        s3.store.fetch_source(source(f"s3://{s3.bucket}/m/dir", "S3Object", "None"))
    with pytest.raises(ArtifactError, match="S3Object needs an object key"):
        s3.store.fetch_source(source(f"s3://{s3.bucket}/m/dir/", "S3Object", "Gzip"))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"S3DataType": "S3Object", "CompressionType": "None"}, r"S3Uri is required"),
        (source("s3://b/k", "S3Prefix", "Gzip"), "'S3Prefix' with CompressionType 'Gzip'"),
        (source("s3://b/k", "ManifestFile", "None"), "S3DataType 'ManifestFile'"),
        ({"S3Uri": "s3://b/k", "S3DataType": "S3Object"}, "CompressionType None"),
    ],
)
def test_source_bad_fields(store: ArtifactStore, spec: dict[str, str], expected: str) -> None:
    with pytest.raises(ArtifactError, match=expected):
        store.fetch_source(spec)


def test_source_local_forms(tmp_path: Path, store: ArtifactStore) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(buffer.getvalue())
    model_dir = tmp_path / "dir"
    model_dir.mkdir()

    gz = store.fetch_source(source(archive.as_uri(), "S3Object", "Gzip"))
    assert files_under(gz) == {"xgboost-model": b"abc"}
    one = store.fetch_source(source(str(archive), "S3Object", "None"))
    assert files_under(one) == {"model.tar.gz": archive.read_bytes()}
    assert store.fetch_source(source(str(model_dir), "S3Prefix", "None")) == model_dir
    with pytest.raises(ArtifactError, match="is a file; S3Prefix needs a directory"):
        store.fetch_source(source(str(archive), "S3Prefix", "None"))
    with pytest.raises(ArtifactError, match="is a directory; S3Object needs one file"):
        store.fetch_source(source(model_dir.as_uri(), "S3Object", "None"))


def test_s3_bucket_root_is_a_prefix(s3: Any) -> None:
    s3.put("model.bin", b"m")
    s3.put("extra/vocab.txt", b"v")
    path = s3.store.fetch(f"s3://{s3.bucket}")
    assert files_under(path) == {"model.bin": b"m", "extra/vocab.txt": b"v"}
    assert s3.store.fetch(f"s3://{s3.bucket}/") == path
