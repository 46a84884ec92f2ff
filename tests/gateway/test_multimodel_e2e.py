"""Multi-model endpoints end to end: 51 per-state churn models behind one endpoint, boto3."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from modelhost.container.multimodel import directory_bytes
from modelhost.testing.churn import STATES, csv_body, make_churn
from modelhost.testing.s3 import local_s3_server, s3_client
from modelhost.testing.server import ModelhostServer, signed_call
from modelhost.testing.state_models import StateModels, write_state_models
from tests.support import FAST_ENV, XGBOOST_IMAGE, deploy, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> StateModels:
    return write_state_models(make_churn(5000, seed=11), tmp_path_factory.mktemp("states"))


def deploy_mme(
    sm: Any,
    name: str,
    prefix: str,
    *,
    instances: int = 1,
    environment: dict[str, str] | None = None,
    wait: bool = True,
) -> None:
    """The seeds' MultiDataModel flow: one model whose ModelDataUrl is a prefix."""
    deploy(
        sm,
        name,
        prefix,
        instances=instances,
        environment=environment,
        wait=wait,
        mode="MultiModel",
    )


def predict(rt: Any, name: str, state: str, X: np.ndarray) -> np.ndarray:
    answer = rt.invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Body=csv_body(X), TargetModel=f"{state}.tar.gz"
    )
    assert answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-invoked-production-variant"]
    text = answer["Body"].read().decode()
    return np.array([float(v) for v in re.split("[,\n]", text) if v])


def native(url: str, path: str) -> Any:
    with urllib.request.urlopen(signed_call(url, "GET", path), timeout=30) as resp:
        return json.loads(resp.read())


def metric(url: str, name: str, endpoint: str) -> float:
    """Sum of a metric's samples for one endpoint in the Prometheus exposition."""
    with urllib.request.urlopen(signed_call(url, "GET", "/metrics"), timeout=30) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and f'EndpointName="{endpoint}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_51_state_models_answer_like_in_process(
    server: ModelhostServer, sm: Any, rt: Any, states: StateModels, tmp_path: Path
) -> None:
    name = unique("mme51")
    # A copy of its own: under xdist another test of this module may have run first on the
    # same server and left some of the shared prefix's artifacts in its cache, which would
    # not count as downloads below.
    prefix = tmp_path / "states"
    shutil.copytree(states.prefix, prefix)
    deploy_mme(sm, name, str(prefix) + "/")
    for state in STATES:
        got = predict(rt, name, state, states.rows[state])
        np.testing.assert_allclose(got, states.expected(state, states.rows[state]), rtol=1e-6)
    # All hot now: a second pass hits the cache every time.
    for state in ("CA", "NY", "TX"):
        got = predict(rt, name, state, states.rows[state][:1])
        np.testing.assert_allclose(got, states.expected(state, states.rows[state][:1]), rtol=1e-6)

    listing = native(server.url, f"/api/endpoints/{name}/models")
    [instance] = listing["Instances"]
    assert sorted(m["ModelName"] for m in instance["Models"]) == sorted(
        f"{s}.tar.gz" for s in STATES
    )
    assert metric(server.url, "ModelCacheHit_count", name) == 54
    assert metric(server.url, "ModelCacheHit_sum", name) == 3
    assert metric(server.url, "ModelLoadingTime_count", name) == 51
    assert metric(server.url, "ModelLoadingWaitTime_count", name) == 51
    assert metric(server.url, "ModelDownloadingTime_count", name) == 51
    assert metric(server.url, "LoadedModelCount", name) == 51
    assert metric(server.url, "TargetModelInvocations_total", name) == 54
    assert metric(server.url, "Invocations_total", name) == 54


@pytest.mark.parametrize("instances", [1, 2])
def test_a_budget_for_some_models_evicts_and_reloads_correctly(
    server: ModelhostServer, sm: Any, rt: Any, states: StateModels, tmp_path: Path, instances: int
) -> None:
    # Room for about ten of the 51 models per instance.
    sizes = []
    for state in STATES:
        with tarfile.open(states.prefix / f"{state}.tar.gz") as tar:
            tar.extractall(tmp_path / state, filter="data")
        sizes.append(directory_bytes(tmp_path / state))
    budget = 10 * max(sizes)
    name = unique("mmebudget")
    deploy_mme(
        sm,
        name,
        str(states.prefix),
        instances=instances,
        environment={"MH_INSTANCE_MODEL_CACHE_BYTES": str(budget)},
    )
    rng = random.Random(5)
    stream = [s for _ in range(3) for s in rng.sample(STATES, len(STATES))]

    def call(state: str) -> None:
        got = predict(rt, name, state, states.rows[state][:2])
        np.testing.assert_allclose(got, states.expected(state, states.rows[state][:2]), rtol=1e-6)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(call, stream))  # re-raises the first failure
    listing = native(server.url, f"/api/endpoints/{name}/models")["Instances"]
    assert len(listing) == instances
    for instance in listing:
        assert len(instance["Models"]) <= 10
        assert instance["UsedBytes"] <= budget == instance["BudgetBytes"]
    assert metric(server.url, "ModelUnloadingTime_count", name) >= 51 * 3 - 10 * instances - 20
    # Reloads after eviction come from the local disk cache: at most one download per
    # artifact (none when another endpoint of this gateway fetched it already).
    assert metric(server.url, "ModelLoadingTime_count", name) > 51
    assert metric(server.url, "ModelDownloadingTime_count", name) <= 51
    assert metric(server.url, "Invocation5XXErrors_total", name) == 0
    assert metric(server.url, "Invocation4XXErrors_total", name) == 0


def test_concurrent_first_requests_load_once(
    server: ModelhostServer, sm: Any, rt: Any, states: StateModels
) -> None:
    name = unique("mmeonce")
    deploy_mme(sm, name, str(states.prefix))
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: predict(rt, name, "CA", states.rows["CA"]), range(10)))
    for got in results:
        np.testing.assert_allclose(got, states.expected("CA", states.rows["CA"]), rtol=1e-6)
    assert metric(server.url, "ModelLoadingTime_count", name) == 1
    assert metric(server.url, "ModelDownloadingTime_count", name) <= 1  # 0: fetched before
    assert metric(server.url, "ModelLoadingWaitTime_count", name) == 10 - metric(
        server.url, "ModelCacheHit_sum", name
    )


@pytest.mark.parametrize(
    "target",
    ["../CA.tar.gz", "/etc/passwd", "a/../../CA.tar.gz", "./CA.tar.gz", "s3://other/CA.tar.gz"],
)
def test_path_escape_target_models_are_refused(
    sm: Any, rt: Any, states: StateModels, mme_endpoint: str, target: str
) -> None:
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(
            EndpointName=mme_endpoint, ContentType="text/csv", Body="1", TargetModel=target
        )
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "targetModel" in info.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def mme_endpoint(clients: tuple[Any, Any], states: StateModels) -> str:
    name = unique("mmeerr")
    deploy_mme(clients[0], name, str(states.prefix))
    return name


def test_multi_model_request_errors(
    server: ModelhostServer, sm: Any, rt: Any, states: StateModels, mme_endpoint: str
) -> None:
    body = csv_body(states.rows["CA"][:1])
    with pytest.raises(ClientError) as info:  # no TargetModel
        rt.invoke_endpoint(EndpointName=mme_endpoint, ContentType="text/csv", Body=body)
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "TargetModel" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:  # not under the prefix
        rt.invoke_endpoint(
            EndpointName=mme_endpoint, ContentType="text/csv", Body=body, TargetModel="ZZ.tar.gz"
        )
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "Failed to download" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:  # a bad request reaches the model: ModelError
        rt.invoke_endpoint(
            EndpointName=mme_endpoint, ContentType="text/csv", Body="1,2", TargetModel="CA.tar.gz"
        )
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 400


def test_a_model_larger_than_the_budget_is_model_error_507(
    sm: Any, rt: Any, states: StateModels
) -> None:
    name = unique("mme507")
    deploy_mme(sm, name, str(states.prefix), environment={"MH_INSTANCE_MODEL_CACHE_BYTES": "64"})
    with pytest.raises(ClientError) as info:
        predict(rt, name, "CA", states.rows["CA"])
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 507
    assert "MH_INSTANCE_MODEL_CACHE_BYTES" in info.value.response["OriginalMessage"]


def test_create_model_rules(sm: Any, tmp_path: Path) -> None:
    role = "arn:aws:iam::123456789012:role/modelhost"
    with pytest.raises(ClientError) as info:
        sm.create_model(
            ModelName=unique("mmebad"),
            PrimaryContainer={"Image": XGBOOST_IMAGE, "Mode": "MultiModel"},
            ExecutionRoleArn=role,
        )
    assert "ModelDataUrl" in info.value.response["Error"]["Message"]
    name = unique("mmemissing")  # a local prefix that is not a folder fails the endpoint
    deploy_mme(sm, name, str(tmp_path / "nope"), wait=False)
    with pytest.raises(Exception):  # noqa: B017 - the waiter's failure type varies
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
        )
    assert "not a directory" in sm.describe_endpoint(EndpointName=name)["FailureReason"]


def test_routing_prefers_the_instance_holding_the_model(
    server: ModelhostServer, sm: Any, rt: Any, states: StateModels
) -> None:
    name = unique("mmetwo")
    deploy_mme(sm, name, str(states.prefix), instances=2)
    for state in ("CA", "NY", "TX", "WA") * 5:  # sequential: no instance is ever busy
        np.testing.assert_allclose(
            predict(rt, name, state, states.rows[state][:1]),
            states.expected(state, states.rows[state][:1]),
            rtol=1e-6,
        )
    instances = native(server.url, f"/api/endpoints/{name}/models")["Instances"]
    assert len(instances) == 2
    held = [m["ModelName"] for inst in instances for m in inst["Models"]]
    # Each model was loaded on exactly one instance, and only once.
    assert sorted(held) == sorted(f"{s}.tar.gz" for s in ("CA", "NY", "TX", "WA"))
    assert metric(server.url, "ModelLoadingTime_count", name) == 4
    assert metric(server.url, "ModelCacheHit_sum", name) == 16


def test_seeds_flow_from_s3_with_boto3(tmp_path: Path, states: StateModels) -> None:
    """MultiDataModel-style: artifacts under an S3 prefix, TargetModel per state."""
    with local_s3_server() as s3_url:
        s3 = s3_client(s3_url)
        bucket = unique("mme")
        s3.create_bucket(Bucket=bucket)
        chosen = ("CA", "NY", "TX", "AK", "WY")
        for state in chosen:
            s3.upload_file(str(states.prefix / f"{state}.tar.gz"), bucket, f"mme/{state}.tar.gz")
        env = {
            **FAST_ENV,
            "MODELHOST_S3_ENDPOINT_URL": s3_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            # Multi-model instances read s3:// themselves and never see the gateway's
            # environment: their key is handed over explicitly.
            "MODELHOST_S3_ACCESS_KEY_ID": "testing",
            "MODELHOST_S3_SECRET_ACCESS_KEY": "testing",
        }
        with ModelhostServer(tmp_path / "home", env=env) as srv:
            sm, rt = srv.clients()
            name = unique("mmes3")
            deploy_mme(sm, name, f"s3://{bucket}/mme/")
            for state in chosen * 2:
                got = predict(rt, name, state, states.rows[state])
                np.testing.assert_allclose(
                    got, states.expected(state, states.rows[state]), rtol=1e-6
                )
            assert metric(srv.url, "ModelDownloadingTime_count", name) == len(chosen)


def test_cli_invoke_target_model_and_models(
    server: ModelhostServer, sm: Any, states: StateModels
) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        # The CLI signs with the admin key of the server's home.
        env = {**os.environ, "MODELHOST_URL": server.url, "MODELHOST_HOME": str(server.home)}
        return subprocess.run(
            [sys.executable, "-m", "modelhost", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    name = unique("mmecli")
    deploy_mme(sm, name, str(states.prefix))
    row = states.rows["NY"][:1]
    out = cli("invoke", name, "--target-model", "NY.tar.gz", "--body", csv_body(row))
    assert out.returncode == 0, out.stderr
    assert abs(float(out.stdout) - float(states.expected("NY", row)[0])) <= 1e-6
    out = cli("models", name)
    assert out.returncode == 0, out.stderr
    assert "1 models" in out.stdout and "NY.tar.gz" in out.stdout
    out = cli("models", name, "--json")
    assert json.loads(out.stdout)["Instances"][0]["Models"][0]["ModelName"] == "NY.tar.gz"
    out = cli("models", unique("nope"))
    assert out.returncode == 1 and "does not exist" in out.stderr


def test_a_users_own_multi_model_server_that_answers_507_gets_unloaded_for(
    server: ModelhostServer, sm: Any, rt: Any, tmp_path: Path
) -> None:
    """A server implementing /models that never evicts: the gateway unloads its LRU model."""
    prefix = tmp_path / "user-models"
    prefix.mkdir()
    for name in "abcd":
        folder = tmp_path / name
        folder.mkdir()
        (folder / "value.txt").write_text(f"value-{name}")
        with tarfile.open(prefix / f"{name}.tar.gz", "w:gz") as tar:
            tar.add(folder / "value.txt", arcname="value.txt")
    script = Path(__file__).with_name("mme_user_server.py")
    name = unique("mmeuser")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": f"command:{sys.executable} {script}",
            "ModelDataUrl": str(prefix),
            "Mode": "MultiModel",
            "Environment": {"MAX_MODELS": "2"},
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    for target in "abcadbca":
        answer = rt.invoke_endpoint(
            EndpointName=name, ContentType="text/plain", Body="x", TargetModel=f"{target}.tar.gz"
        )
        assert answer["Body"].read() == f"value-{target}".encode()
    [instance] = native(server.url, f"/api/endpoints/{name}/models")["Instances"]
    assert len(instance["Models"]) == 2
    assert metric(server.url, "ModelUnloadingTime_count", name) >= 4
