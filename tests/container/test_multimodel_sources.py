"""A multi-model instance is its own host agent: `POST /models` names a location
(`file://`, `s3://`, a path to an archive) and the instance fetches it through the artifact
store into its shared cache, then admits it into its one LRU (real instance processes)."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.container.loading import directory_bytes
from modelhost.store.cache_bound import bound, scan
from modelhost.testing.churn import csv_body
from modelhost.testing.s3 import (
    TEST_ACCESS_KEY_ID,
    TEST_REGION,
    TEST_SECRET_ACCESS_KEY,
    local_s3_server,
    s3_client,
)
from modelhost.testing.state_models import StateModels
from tests.container.instance_support import Instance


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with local_s3_server() as endpoint_url:
        yield endpoint_url


def _start(tmp_path: Path, **env: str) -> Instance:
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    inst = Instance(
        empty,
        {
            "SAGEMAKER_MULTI_MODEL": "true",
            "MH_INSTANCE_ARTIFACT_CACHE_DIR": str(tmp_path / "cache"),
            **env,
        },
    )
    status, _ = inst.wait_ping()
    assert status == 200, inst.log()
    return inst


def _load(inst: Instance, name: str, url: str) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"model_name": name, "url": url}).encode()
    status, _, out = inst.request("POST", "/models", body, {"Content-Type": "application/json"})
    return status, json.loads(out)


def _scores(inst: Instance, name: str, X: np.ndarray) -> np.ndarray:
    status, _, out = inst.request(
        "POST", f"/models/{name}/invoke", csv_body(X).encode(), {"Content-Type": "text/csv"}
    )
    assert status == 200, out
    return np.array([float(v) for v in out.decode().replace("\n", ",").split(",") if v])


def test_file_url_and_archive_path_are_fetched_and_cached(
    tmp_path: Path, models: StateModels
) -> None:
    with _start(tmp_path) as inst:
        url = f"file://{models.prefix}/CA.tar.gz"
        status, doc = _load(inst, "CA", url)
        assert status == 200, doc
        assert doc["modelUrl"] == url and doc["downloadingTimeUs"] >= 0
        assert doc["loadingTimeUs"] > 0
        np.testing.assert_allclose(
            _scores(inst, "CA", models.rows["CA"]), models.expected("CA", models.rows["CA"])
        )
        # A plain path to an archive, under another name: the same cache entry, found
        # there (no unpack, so no ModelDownloadingTime for the gateway to report).
        status, doc = _load(inst, "CA-again", str(models.prefix / "CA.tar.gz"))
        assert status == 200, doc
        assert "downloadingTimeUs" not in doc
        # Unloaded and loaded again: nothing is fetched twice.
        assert inst.request("DELETE", "/models/CA")[0] == 200
        status, doc = _load(inst, "CA", url)
        assert status == 200 and "downloadingTimeUs" not in doc
        entries = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
        assert len([p for p in entries if p.is_dir()]) == 1
        # The unpacked model is charged its bytes on disk, as a local directory is.
        unpacked = next(p for p in entries if p.is_dir())
        assert doc["memoryBytes"] == directory_bytes(unpacked)


def test_s3_location(tmp_path: Path, models: StateModels, s3_endpoint: str) -> None:
    bucket = f"mme-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    for state in ("NY", "TX"):
        client.upload_file(str(models.prefix / f"{state}.tar.gz"), bucket, f"mme/{state}.tar.gz")
    env = {
        "MH_INSTANCE_S3_ENDPOINT_URL": s3_endpoint,
        "MH_INSTANCE_S3_REGION": TEST_REGION,
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET_ACCESS_KEY,
    }
    with _start(tmp_path, **env) as inst:
        for state in ("NY", "TX"):
            status, doc = _load(inst, f"{state}.tar.gz", f"s3://{bucket}/mme/{state}.tar.gz")
            assert status == 200, doc
            np.testing.assert_allclose(
                _scores(inst, f"{state}.tar.gz", models.rows[state]),
                models.expected(state, models.rows[state]),
            )
        status, doc = _load(inst, "missing", f"s3://{bucket}/mme/missing.tar.gz")
        assert status == 400 and doc["artifactError"] is True
        assert "Failed to download model data for missing" in doc["message"]
        assert inst.request("GET", "/models/missing")[0] == 404


def test_eviction_under_the_budget_with_fetched_models(tmp_path: Path, models: StateModels) -> None:
    # Room for two of the (similar-sized) state models.
    sizes = []
    for state in ("WA", "AK", "NJ"):
        folder = tmp_path / "sizes" / state
        with tarfile.open(models.prefix / f"{state}.tar.gz") as tar:
            tar.extractall(folder, filter="data")
        sizes.append(directory_bytes(folder))
    budget = max(sizes) * 2 + min(sizes) // 2
    with _start(tmp_path, MH_INSTANCE_MODEL_CACHE_BYTES=str(budget)) as inst:
        for state in ("WA", "AK"):
            assert _load(inst, state, f"file://{models.prefix}/{state}.tar.gz")[0] == 200
            _scores(inst, state, models.rows[state])
        _scores(inst, "WA", models.rows["WA"])  # AK is now the least recently used
        status, doc = _load(inst, "NJ", f"file://{models.prefix}/NJ.tar.gz")
        assert status == 200, doc
        assert [e["modelName"] for e in doc["evicted"]] == ["AK"]
        listing = json.loads(inst.request("GET", "/models")[2])
        assert sorted(m["modelName"] for m in listing["models"]) == ["NJ", "WA"]
        assert listing["usedBytes"] <= budget


def test_bad_locations(tmp_path: Path, models: StateModels) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    allowed = json.dumps([f"file://{models.prefix}/", f"file://{tmp_path}/"])
    with _start(tmp_path, MH_INSTANCE_ALLOWED_DATA_PREFIXES=allowed) as inst:
        status, doc = _load(inst, "evil", str(evil))
        assert status == 400 and doc["artifactError"] is True
        assert "outside the model directory" in doc["message"]
        assert not (tmp_path / "escape.txt").exists()
        status, doc = _load(inst, "gone", f"file://{models.prefix}/GONE.tar.gz")
        assert status == 404 and "not a directory" in doc["message"] and doc["artifactError"]
        status, doc = _load(inst, "ftp", "ftp://host/CA.tar.gz")
        assert status == 403 and "allowed data prefix" in doc["message"]
        status, doc = _load(inst, "elsewhere", "/etc")
        assert status == 403
        # Inside the allowed prefixes: loads.
        assert _load(inst, "CA", f"file://{models.prefix}/CA.tar.gz")[0] == 200


def test_in_a_bounded_cache_loaded_models_are_leased(tmp_path: Path, models: StateModels) -> None:
    """A Ray node's cache is bounded (`store/cache_bound.py`): the instance leases the
    entry of each model it has loaded, so the node evicts only unloaded ones, and none
    of a killed instance's."""
    cache = tmp_path / "cache"
    with _start(tmp_path, MH_INSTANCE_ARTIFACT_CACHE_BYTES=str(10**12)) as inst:
        for state in ("WA", "AK"):
            assert _load(inst, state, f"file://{models.prefix}/{state}.tar.gz")[0] == 200
        assert len([e for e in scan(cache) if e.in_use]) == 2
        assert bound(cache, 0).evicted == ()
        assert inst.request("DELETE", "/models/AK")[0] == 200
        (gone,) = bound(cache, 0).evicted
        assert [e.in_use for e in scan(cache)] == [True]
        # Loaded again: fetched anew from its location, then served.
        status, doc = _load(inst, "AK", f"file://{models.prefix}/AK.tar.gz")
        assert status == 200 and doc["downloadingTimeUs"] >= 0, doc
        _scores(inst, "AK", models.rows["AK"])
        assert (cache / gone).is_dir()
        inst.process.kill()
        inst.process.wait(timeout=60)
        assert len(bound(cache, 0).evicted) == 2


def test_a_fetch_into_a_bounded_cache_evicts_unloaded_models(
    tmp_path: Path, models: StateModels
) -> None:
    cache = tmp_path / "cache"
    with _start(tmp_path, MH_INSTANCE_ARTIFACT_CACHE_BYTES="1") as inst:
        for state in ("WA", "AK"):
            assert _load(inst, state, f"file://{models.prefix}/{state}.tar.gz")[0] == 200
        assert len(scan(cache)) == 2  # over budget, but both models are loaded
        assert inst.request("DELETE", "/models/WA")[0] == 200
        status, doc = _load(inst, "NJ", f"file://{models.prefix}/NJ.tar.gz")
        assert status == 200, doc
        # NJ's fetch evicted WA's files (unloaded), never AK's (loaded) or its own.
        assert [e.in_use for e in scan(cache)] == [True, True]
        _scores(inst, "AK", models.rows["AK"])
        _scores(inst, "NJ", models.rows["NJ"])
