"""The gateway's bounded artifact cache through a real server and boto3: two endpoints over a
tiny budget keep their models (in use), and once one endpoint is deleted the leader's
periodic pass evicts its model while the other endpoint's stays and serves."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from modelhost.testing.server import ModelhostServer
from tests.jobs.support import wait_for
from tests.support import FAST_ENV, ChurnModel, deploy, unique

pytestmark = pytest.mark.integration


def _entry(home: Path, artifact: Path) -> Path:
    # The cache keys a local archive by the SHA-256 of its bytes.
    return home / "artifacts" / hashlib.sha256(artifact.read_bytes()).hexdigest()


def test_the_periodic_pass_evicts_a_deleted_endpoints_model_only(
    tmp_path: Path, churn_model: ChurnModel, churn_model_small: ChurnModel
) -> None:
    home = tmp_path / "home"
    env = {
        **FAST_ENV,
        "MODELHOST_ARTIFACT_CACHE_BYTES": "1",
        "MODELHOST_ARTIFACT_CACHE_EVICT_INTERVAL_S": "0.3",
    }
    with ModelhostServer(home, env=env) as server:
        sm, rt = server.clients()
        gone, kept = unique("cache-gone"), unique("cache-kept")
        deploy(sm, gone, str(churn_model.artifact))
        deploy(sm, kept, str(churn_model_small.artifact))
        gone_dir = _entry(home, churn_model.artifact)
        kept_dir = _entry(home, churn_model_small.artifact)
        # Both over the 1-byte budget, both in use: neither is evicted.
        assert gone_dir.is_dir() and kept_dir.is_dir()

        sm.delete_endpoint(EndpointName=gone)
        sm.get_waiter("endpoint_deleted").wait(
            EndpointName=gone, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
        # No fetch happens from here on: only the periodic pass can evict it.
        wait_for(lambda: not gone_dir.exists(), timeout_s=60)
        assert kept_dir.is_dir()
        X = churn_model_small.data.X[:3]
        body = "\n".join(",".join(str(v) for v in row) for row in X)
        answer = rt.invoke_endpoint(EndpointName=kept, ContentType="text/csv", Body=body)
        got = [float(v) for v in answer["Body"].read().decode().replace("\n", ",").split(",")]
        assert got == pytest.approx(churn_model_small.expected(X).tolist(), rel=1e-5)
