"""Fixtures for the artifact store: archive builders, a store on a temp cache, local S3."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelhost.settings import Settings
from modelhost.store.artifacts import ArtifactStore
from modelhost.testing.postgres import PostgresCluster
from modelhost.testing.s3 import local_s3_server, s3_client
from tests.store.support import Entry, TarBuilder, tar_bytes


@pytest.fixture
def make_tar(tmp_path: Path) -> TarBuilder:
    """Write an archive of `entries` under tmp_path/src and return its path."""

    def build(entries: list[Entry], name: str = "model.tar.gz", compress: bool = True) -> Path:
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tar_bytes(entries, compress))
        return path

    return build


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty metadata database: a SQLite file, or a fresh database on the session's
    PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.fresh_database_url()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def store(settings: Settings) -> ArtifactStore:
    return ArtifactStore(settings)


@pytest.fixture
def leftovers(settings: Settings) -> Callable[[], list[str]]:
    """What the cache holds besides the (empty) lock files: [] after a failed fetch."""

    def names() -> list[str]:
        root = settings.artifact_cache_dir
        if not root.exists():
            return []
        return sorted(p.name for p in root.iterdir() if p.name != ".locks")

    return names


@pytest.fixture
def tar_data() -> Callable[..., bytes]:
    """`tar_bytes`, for tests that need archive bytes rather than a file."""
    return tar_bytes


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with local_s3_server() as endpoint_url:
        yield endpoint_url


@dataclass
class S3Env:
    endpoint_url: str
    client: Any
    bucket: str
    settings: Settings
    store: ArtifactStore

    def put(self, key: str, body: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return f"s3://{self.bucket}/{key}"


@pytest.fixture
def s3(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3Env:
    """A fresh bucket on the session's moto server; the store finds it via the env chain."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # moto's buckets are process-wide: a unique name keeps tests independent.
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    settings = Settings(home=tmp_path / "home", s3_endpoint_url=s3_endpoint)
    return S3Env(s3_endpoint, client, bucket, settings, ArtifactStore(settings))
