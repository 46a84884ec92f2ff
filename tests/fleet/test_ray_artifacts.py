"""Artifacts on a Ray node, without Ray: the gateway leaves the artifact to the node
(`node_fetch`), the node fetches it from S3 or a path into its own cache, once per node."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ArtifactError
from modelhost.fleet.launch import LaunchError, build_launch_spec
from modelhost.fleet.ray.artifacts import launch_artifact, node_cache_dir, node_model
from modelhost.settings import Settings
from modelhost.testing.s3 import TEST_ACCESS_KEY_ID, local_s3_server, s3_client
from tests.support import XGBOOST_IMAGE, unique


def _archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _no_fetch(_: Any) -> Path:
    raise AssertionError("the gateway fetched the artifact")


def _spec(settings: Settings, container: dict[str, Any]) -> Any:
    return build_launch_spec(
        settings=settings,
        endpoint_name="e",
        variant_name="v",
        model_name="m",
        model_spec={"PrimaryContainer": container},
        fetch=_no_fetch,
        fetch_source=_no_fetch,
        node_fetch=True,
    )


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with local_s3_server() as url:
        yield url


def _settings(tmp_path: Path, s3_url: str) -> Settings:
    return Settings(
        home=tmp_path / "gateway",
        s3_endpoint_url=s3_url,
        s3_access_key_id=TEST_ACCESS_KEY_ID,
        s3_secret_access_key="not-in-any-log",
        ray_node_cache_dir=str(tmp_path / "nodes"),
    )


def _upload(s3_url: str, tmp_path: Path, data: bytes = b"model bytes") -> str:
    bucket = unique("nodes")
    s3 = s3_client(s3_url)
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(
        str(_archive(tmp_path / "model.tar.gz", {"model.bin": data})), bucket, "m.tar.gz"
    )
    return f"s3://{bucket}/m.tar.gz"


def test_the_gateway_leaves_the_artifact_to_the_node(tmp_path: Path, s3_url: str) -> None:
    settings = _settings(tmp_path, s3_url)
    spec = _spec(settings, {"Image": XGBOOST_IMAGE, "ModelDataUrl": "s3://b/m.tar.gz"})
    assert spec.node_artifact is not None
    assert spec.node_artifact.model_data_url == "s3://b/m.tar.gz"
    assert spec.node_artifact.store["s3_endpoint_url"] == s3_url
    # The secret travels to the node but never into a repr (and so no log line).
    assert "not-in-any-log" not in repr(spec)
    assert list(spec.model_dir.iterdir()) == []  # the gateway's empty placeholder
    source = {"S3Uri": "s3://b/p/", "S3DataType": "S3Prefix", "CompressionType": "None"}
    spec = _spec(settings, {"Image": XGBOOST_IMAGE, "ModelDataSource": {"S3DataSource": source}})
    assert spec.node_artifact is not None and spec.node_artifact.model_data_source == source


def test_a_node_fetches_once_and_its_instances_share_the_copy(tmp_path: Path, s3_url: str) -> None:
    settings = _settings(tmp_path, s3_url)
    url = _upload(s3_url, tmp_path)
    launch = launch_artifact(_spec(settings, {"Image": XGBOOST_IMAGE, "ModelDataUrl": url}))
    first = node_model(launch, Path("/nonexistent"), {}, "127.0.1.2")
    assert (first.model_dir / "model.bin").read_bytes() == b"model bytes"
    assert first.model_dir.is_relative_to(tmp_path / "nodes" / "127.0.1.2")
    assert first.env["SM_MODEL_DIR"] == str(first.model_dir)
    assert " fetched on node 127.0.1.2" in first.note
    again = node_model(launch, Path("/nonexistent"), {}, "127.0.1.2")
    assert again.model_dir == first.model_dir and "found in the node's cache" in again.note
    # Another node has a cache of its own; the gateway's artifact cache stays empty.
    other = node_model(launch, Path("/nonexistent"), {}, "127.0.1.3")
    assert other.model_dir.is_relative_to(tmp_path / "nodes" / "127.0.1.3")
    assert not settings.artifact_cache_dir.exists() or not any(
        settings.artifact_cache_dir.iterdir()
    )


def test_concurrent_starts_on_a_node_download_once(tmp_path: Path, s3_url: str) -> None:
    settings = _settings(tmp_path, s3_url)
    url = _upload(s3_url, tmp_path, b"x" * 3_000_000)
    launch = launch_artifact(_spec(settings, {"Image": XGBOOST_IMAGE, "ModelDataUrl": url}))
    results: list[Any] = []

    def start() -> None:
        results.append(node_model(launch, Path("/nonexistent"), {}, "127.0.1.1"))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 4
    assert len({r.model_dir for r in results}) == 1
    assert sum(" fetched on node" in r.note for r in results) == 1
    assert (results[0].model_dir / "model.bin").stat().st_size == 3_000_000


def test_multi_model_instances_cache_on_the_node(tmp_path: Path, s3_url: str) -> None:
    settings = _settings(tmp_path, s3_url)
    container = {"Image": XGBOOST_IMAGE, "ModelDataUrl": "s3://b/mme/", "Mode": "MultiModel"}
    spec = _spec(settings, container)
    model = node_model(launch_artifact(spec), Path("/nonexistent"), spec.env, "127.0.1.2")
    cache = node_cache_dir({"cache_dir": str(tmp_path / "nodes")}, "127.0.1.2")
    # The models it loads go to this node's cache, not the gateway's.
    assert model.env["MH_INSTANCE_ARTIFACT_CACHE_DIR"] == str(cache)
    assert model.model_dir.is_dir() and model.model_dir.is_relative_to(cache)


def test_a_missing_object_names_the_url(tmp_path: Path, s3_url: str) -> None:
    settings = _settings(tmp_path, s3_url)
    bucket = unique("nodes")
    s3_client(s3_url).create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/nope.tar.gz"
    launch = launch_artifact(_spec(settings, {"Image": XGBOOST_IMAGE, "ModelDataUrl": url}))
    with pytest.raises(ArtifactError, match=url):
        node_model(launch, Path("/nonexistent"), {}, "127.0.1.2")


def test_without_an_artifact_section_the_shared_path_is_used(tmp_path: Path) -> None:
    assert node_model(None, tmp_path, {}, "n").model_dir == tmp_path
    with pytest.raises(FileNotFoundError, match="every node shares"):
        node_model(None, tmp_path / "missing", {}, "n")


def test_a_command_server_leaves_its_artifact_to_the_node(tmp_path: Path) -> None:
    """Its program may ship inside the artifact: the gateway neither fetches nor checks it,
    and puts its placeholder model directory in the argv for the node to replace."""
    spec = build_launch_spec(
        settings=Settings(home=tmp_path / "gateway"),
        endpoint_name="e",
        variant_name="v",
        model_name="m",
        model_spec={
            "PrimaryContainer": {"Image": "command:./serve.sh --fast", "ModelDataUrl": "s3://b/m"}
        },
        fetch=_no_fetch,
        fetch_source=_no_fetch,
        node_fetch=True,
    )
    assert spec.node_artifact is not None and spec.node_artifact.location == "s3://b/m"
    assert spec.argv[-3:] == [str(spec.model_dir / "serve.sh"), "--fast", "serve"]


def test_a_command_server_without_an_artifact_is_still_checked_by_the_gateway(
    tmp_path: Path,
) -> None:
    with pytest.raises(LaunchError, match="does not exist"):
        build_launch_spec(
            settings=Settings(home=tmp_path / "gateway"),
            endpoint_name="e",
            variant_name="v",
            model_name="m",
            model_spec={"PrimaryContainer": {"Image": "command:./serve.sh"}},
            fetch=_no_fetch,
            fetch_source=_no_fetch,
            node_fetch=True,
        )
