"""Artifacts reach Ray nodes from the artifact store, never through the gateway: an endpoint
whose ModelDataUrl is on a local S3 server serves on a 3-node cluster, each node fetching
the model into its own cache once, and a multi-model endpoint loads its models there too."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.ray import RayCluster, node_address
from modelhost.testing.s3 import (
    TEST_ACCESS_KEY_ID,
    TEST_SECRET_ACCESS_KEY,
    local_s3_server,
    s3_client,
)
from modelhost.testing.server import ModelhostServer
from tests.fleet.ray_support import delete_every_endpoint, instance_addresses, instance_hosts
from tests.gateway.support import csv_floats
from tests.jobs.support import wait_for
from tests.support import FAST_ENV, ChurnModel, deploy, unique

pytest.importorskip("ray")
pytestmark = [pytest.mark.integration, pytest.mark.ray]

NODE_LINE = re.compile(r"modelhost: model (\S+) (fetched|found in the node's cache) on node (\S+)")


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with local_s3_server() as url:
        yield url


@pytest.fixture(scope="module")
def node_caches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("node-caches")


@pytest.fixture(scope="module")
def ray_server(
    ray_cluster: RayCluster,
    s3_url: str,
    node_caches: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ModelhostServer]:
    env = {
        **FAST_ENV,
        "MODELHOST_FLEET": "ray",
        "MODELHOST_RAY_ADDRESS": ray_cluster.address,
        "MODELHOST_RAY_RESOURCE_SCALE": "0.1",
        "MODELHOST_RAY_NODE_CACHE_DIR": str(node_caches),
        # What the nodes fetch with; the gateway itself gets no AWS credentials at all.
        "MODELHOST_S3_ENDPOINT_URL": s3_url,
        "MODELHOST_S3_ACCESS_KEY_ID": TEST_ACCESS_KEY_ID,
        "MODELHOST_S3_SECRET_ACCESS_KEY": TEST_SECRET_ACCESS_KEY,
    }
    with ModelhostServer(tmp_path_factory.mktemp("ray-s3-home"), env=env) as srv:
        yield srv
        delete_every_endpoint(srv)
        # The leader stops a deleted endpoint's actors after the endpoint is gone.
        wait_for(lambda: not ray_cluster.actor_pids(), timeout_s=120)


def _node_lines(home: Path, endpoint: str) -> list[tuple[str, str, str]]:
    """(url, how, node) of each "model ... on node" line of the endpoint's instance logs."""
    found = []
    for log in (home / "logs" / endpoint).rglob("*.log"):
        found += NODE_LINE.findall(log.read_text(errors="replace"))
    return found


def _cwd(pid: int) -> Path:
    return Path(f"/proc/{pid}/cwd").resolve()


def test_nodes_fetch_the_s3_artifact_into_their_own_cache(
    ray_server: ModelhostServer, s3_url: str, node_caches: Path, churn_model: ChurnModel
) -> None:
    sm, rt = ray_server.clients()
    bucket = unique("ray-models")
    s3 = s3_client(s3_url)
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(churn_model.artifact), bucket, "churn/model.tar.gz")
    url = f"s3://{bucket}/churn/model.tar.gz"
    name = unique("ray-s3")
    # Four instances on three nodes: one node runs two.
    deploy(sm, name, url, instances=4)
    assert sorted(set(instance_hosts(ray_server.home, name))) == sorted(
        node_address(i) for i in range(3)
    )
    X = churn_model.data.X[:5]
    for _ in range(8):
        resp = rt.invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Body="\n".join(csv_rows(X))
        )
        np.testing.assert_allclose(
            csv_floats(resp["Body"].read()), churn_model.expected(X), rtol=1e-6
        )
    # Each instance runs in its own node's cache.
    for pid, (host, _) in instance_addresses(ray_server.home, name).items():
        model_dir = _cwd(pid)
        assert model_dir.is_relative_to(node_caches.resolve() / host), (host, model_dir)
        assert any(model_dir.iterdir())
    # Each node downloaded it once; the node's second instance found it in the cache.
    lines = _node_lines(ray_server.home, name)
    assert len(lines) == 4 and {u for u, _, _ in lines} == {url}, lines
    fetched = Counter(node for _, how, node in lines if how == "fetched")
    assert fetched == Counter({node_address(i): 1 for i in range(3)}), lines
    assert [how for _, how, _ in lines].count("found in the node's cache") == 1
    # The gateway's own artifact cache never unpacked it.
    gateway_cache = ray_server.home / "artifacts"
    assert not gateway_cache.exists() or not [
        p for p in gateway_cache.iterdir() if not p.name.startswith(".")
    ]
    sm.delete_endpoint(EndpointName=name)


def test_a_missing_s3_artifact_fails_with_its_url(ray_server: ModelhostServer, s3_url: str) -> None:
    sm, _ = ray_server.clients()
    bucket = unique("ray-models")
    s3_client(s3_url).create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/nope/model.tar.gz"
    name = unique("ray-s3-missing")
    deploy(sm, name, url, wait=False)
    with pytest.raises(Exception):  # noqa: B017 - the waiter's failure type varies
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 240}
        )
    reason = sm.describe_endpoint(EndpointName=name)["FailureReason"]
    assert url in reason and "could not get the model" in reason, reason


def test_multi_model_instances_load_from_s3_on_their_node(
    ray_server: ModelhostServer,
    s3_url: str,
    node_caches: Path,
    churn_model: ChurnModel,
    churn_model_small: ChurnModel,
) -> None:
    sm, rt = ray_server.clients()
    bucket = unique("ray-mme")
    s3 = s3_client(s3_url)
    s3.create_bucket(Bucket=bucket)
    models = {"big.tar.gz": churn_model, "small.tar.gz": churn_model_small}
    for key, model in models.items():
        s3.upload_file(str(model.artifact), bucket, f"mme/{key}")
    name = unique("ray-mme")
    deploy(sm, name, f"s3://{bucket}/mme/", mode="MultiModel")
    X = churn_model.data.X[:5]
    for key, model in models.items():
        resp = rt.invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Body="\n".join(csv_rows(X)), TargetModel=key
        )
        np.testing.assert_allclose(csv_floats(resp["Body"].read()), model.expected(X), rtol=1e-6)
    ((pid, (host, _)),) = instance_addresses(ray_server.home, name).items()
    # The instance's artifact cache is its node's; both models were unpacked there.
    env = dict(
        e.split("=", 1) for e in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in e
    )
    assert Path(env["MH_INSTANCE_ARTIFACT_CACHE_DIR"]) == node_caches / host
    unpacked = [p for p in (node_caches / host).iterdir() if p.is_dir() and p.name[0] != "."]
    assert len(unpacked) >= 3  # the two models and the instance's empty model directory
    sm.delete_endpoint(EndpointName=name)
