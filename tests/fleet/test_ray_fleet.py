"""The Ray fleet on a local 3-node Ray cluster: placement over nodes, a lost node, a
transform job fanned out over the nodes, and instance output shipped from the nodes.

The module's gateway ships every instance's output (`ray_instance_logs = ship`), as it does
for nodes on other machines, so these tests run the way a real cluster does."""

from __future__ import annotations

import json
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.ray import RayCluster, node_address
from modelhost.testing.server import ModelhostServer
from tests.fleet.ray_support import (
    delete_every_endpoint,
    instance_addresses,
    instance_hosts,
    serving_hosts,
)
from tests.gateway.support import create_endpoint, csv_floats, wait_in_service
from tests.jobs.support import transform, wait_for
from tests.support import FAST_ENV, XGBOOST_IMAGE, ChurnModel, Loop, deploy, unique

pytest.importorskip("ray")
pytestmark = [pytest.mark.integration, pytest.mark.ray]

NODES = {node_address(i) for i in range(3)}

ECHO_SCRIPT = """
import json


def model_fn(model_dir):
    print("model_fn: ready on its node")
    return "echo"


def input_fn(body, content_type):
    return json.loads(body)


def predict_fn(data, model):
    print(f"predict_fn saw marker={data['marker']}")
    return data


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""


@pytest.fixture(scope="module")
def ray_server(
    ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelhostServer]:
    env = {
        **FAST_ENV,
        "MODELHOST_FLEET": "ray",
        "MODELHOST_RAY_ADDRESS": ray_cluster.address,
        # An ml.m5.large (2 vCPU, 8 GiB) asks for 0.2 CPU and 0.8 GiB: 5 fit on a node.
        "MODELHOST_RAY_RESOURCE_SCALE": "0.1",
        # As if the nodes were other machines: no node writes the gateway's log files.
        "MODELHOST_RAY_INSTANCE_LOGS": "ship",
    }
    home = tmp_path_factory.mktemp("ray-home")
    # The nodes unpack the artifacts here, not in the machine's temp directory.
    env["MODELHOST_RAY_NODE_CACHE_DIR"] = str(home / "node-caches")
    with ModelhostServer(home, env=env) as srv:
        yield srv
        delete_every_endpoint(srv)
        # The leader stops a deleted endpoint's actors after the endpoint is gone.
        wait_for(lambda: not ray_cluster.actor_pids(), timeout_s=120)
    # Every endpoint was deleted and the job instances went with the gateway: no instance
    # actor is left on the cluster (endpoint instances outlive a gateway that stops).
    wait_for(lambda: not ray_cluster.actor_pids(), timeout_s=60)


@pytest.fixture(scope="module")
def ray_clients(ray_server: ModelhostServer) -> tuple[Any, Any]:
    return ray_server.clients()


def test_three_instances_land_on_three_nodes(
    ray_server: ModelhostServer, ray_clients: tuple[Any, Any], churn_model: ChurnModel
) -> None:
    sm, rt = ray_clients
    name = unique("ray-spread")
    deploy(sm, name, str(churn_model.artifact), instances=3)
    assert instance_hosts(ray_server.home, name) == sorted(NODES)
    body = "\n".join(csv_rows(churn_model.data.X[:5]))
    for _ in range(6):
        resp = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)
        scores = np.array(csv_floats(resp["Body"].read()))
        np.testing.assert_allclose(scores, churn_model.expected(churn_model.data.X[:5]), rtol=1e-6)
    sm.delete_endpoint(EndpointName=name)


def test_multi_container_endpoint_on_ray(
    ray_clients: tuple[Any, Any], churn_model: ChurnModel, churn_model_small: ChurnModel
) -> None:
    """A container group's members are placed like instances; each answers for itself."""
    sm, rt = ray_clients
    name = unique("ray-mce")
    containers = [
        {"ContainerHostname": host, "Image": XGBOOST_IMAGE, "ModelDataUrl": str(m.artifact)}
        for host, m in (("big", churn_model), ("small", churn_model_small))
    ]
    create_endpoint(sm, name, containers, "Direct")
    wait_in_service(sm, name)
    X = churn_model.data.X[:10]
    for host, model in (("big", churn_model), ("small", churn_model_small)):
        resp = rt.invoke_endpoint(
            EndpointName=name,
            ContentType="text/csv",
            Body="\n".join(csv_rows(X)),
            TargetContainerHostname=host,
        )
        np.testing.assert_allclose(csv_floats(resp["Body"].read()), model.expected(X), atol=1e-6)
    sm.delete_endpoint(EndpointName=name)


def test_an_instances_print_on_a_node_reaches_get_log_events(
    ray_server: ModelhostServer, ray_clients: tuple[Any, Any], tmp_path: Path
) -> None:
    """The instance's output is a pipe to its actor, not a file the gateway reads; the
    gateway pulls it into the endpoint's log stream. Its package and compiled-model caches
    are on its node."""
    sm, rt = ray_clients
    (tmp_path / "inference.py").write_text(ECHO_SCRIPT)
    artifact = tmp_path / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        tar.add(tmp_path / "inference.py", arcname="code/inference.py")
    name = unique("ray-logs")
    deploy(sm, name, str(artifact), image=None)
    marker = uuid.uuid4().hex
    body = json.dumps({"marker": marker})
    rt.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=body)
    pids = list(instance_addresses(ray_server.home, name))
    assert pids
    assert os.readlink(f"/proc/{pids[0]}/fd/1").startswith("pipe:")
    environ = Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
    env = dict(e.decode().split("=", 1) for e in environ if b"=" in e)
    for variable, folder in (
        ("MH_INSTANCE_PACKAGES_DIR", "packages"),
        ("MH_INSTANCE_COMPILE_CACHE_DIR", "compiled"),
    ):
        where = Path(env[variable])
        assert where.is_relative_to(ray_server.home / "node-caches") and where.name == folder

    logs = ray_server.client("logs")
    group = f"/aws/sagemaker/Endpoints/{name}"
    (stream,) = [
        s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]
    ]

    def messages() -> list[str]:
        got = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
        return [e["message"] for e in got["events"]]

    wanted = f"predict_fn saw marker={marker}"
    wait_for(lambda: wanted in messages(), timeout_s=60)
    seen = messages()
    assert seen.index("model_fn: ready on its node") < seen.index(wanted)
    assert seen.count(wanted) == 1
    sm.delete_endpoint(EndpointName=name)


def test_lost_node_loses_no_request_and_instance_comes_back(
    ray_server: ModelhostServer,
    ray_cluster: RayCluster,
    ray_clients: tuple[Any, Any],
    churn_model: ChurnModel,
) -> None:
    sm, rt = ray_clients
    name = unique("ray-loss")
    deploy(sm, name, str(churn_model.artifact), instances=2)
    before = instance_hosts(ray_server.home, name)
    assert len(set(before)) == 2
    # Lose a worker node that holds an instance (never the head: it holds the GCS).
    victim = next(h for h in before if h != node_address(0))
    index = [node_address(i) for i in range(3)].index(victim)
    body = csv_rows(churn_model.data.X[:1])[0]
    with Loop(rt, name, body, limit_s=240) as loop:
        loop.wait_ok(20)
        ray_cluster.kill_node(index)
        # The instance comes back on a live node, and serves.
        wait_for(
            lambda: len(hosts := serving_hosts(ray_server.home, name)) == 2 and victim not in hosts,
            timeout_s=120,
        )
        loop.wait_ok(20, timeout_s=120)
    # A request the lost node had accepted may fail; no other one does (a refused
    # connection is retried on another instance).
    assert len(loop.errors) <= 1, loop.errors
    after = instance_hosts(ray_server.home, name)
    assert len(set(after)) == 2 and victim not in after, after
    sm.delete_endpoint(EndpointName=name)


def test_transform_job_over_three_nodes_is_exactly_once(
    ray_clients: tuple[Any, Any], churn_model: ChurnModel, tmp_path: Path
) -> None:
    sm, _ = ray_clients
    model = unique("ray-batch")
    sm.create_model(
        ModelName=model,
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
    )
    X = churn_model.data.X
    for part in range(3):
        path = tmp_path / "in" / f"part-{part}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(csv_rows(X[part::3])) + "\n")
    d = transform(
        sm,
        model,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=1,
        MaxConcurrentTransforms=2,
        InstanceCount=3,
    )
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    for part in range(3):
        out = (tmp_path / "out" / f"part-{part}.csv.out").read_text().split()
        np.testing.assert_allclose(
            np.array([float(x) for x in out]), churn_model.expected(X[part::3]), rtol=1e-6
        )
