"""Updates without downtime, instance crashes, server restarts and S3 artifacts."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.s3 import local_s3_server, s3_client
from modelhost.testing.server import ModelhostServer
from tests.support import (
    FAST_ENV,
    XGBOOST_IMAGE,
    ChurnModel,
    Loop,
    deploy,
    forked_instances,
    instance_pids,
    parent_pid,
    unique,
    zygote_pids,
)

pytestmark = pytest.mark.integration


def test_update_endpoint_switches_without_downtime(
    server: ModelhostServer, churn_model: ChurnModel, churn_model_small: ChurnModel
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name = unique("update")
    deploy(sm, name, str(churn_model.artifact))
    old_pids = instance_pids(server.home, name)
    assert len(old_pids) == 1
    sm.create_model(
        ModelName=f"{name}-v2",
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model_small.artifact)},
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-v2",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-v2",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    X = churn_model.data.X[:1]
    old_answer = float(churn_model.expected(X)[0])
    new_answer = float(churn_model_small.expected(X)[0])
    assert abs(old_answer - new_answer) > 1e-4
    with Loop(rt, name, csv_rows(X)[0]) as loop:
        loop.wait_ok(5)
        sm.update_endpoint(EndpointName=name, EndpointConfigName=f"{name}-v2")
        assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
        loop.wait_ok(5)  # answered after InService: by the new model
    assert loop.errors == []
    assert loop.ok >= 10
    # Every answer came from one of the two models, old ones first.
    assert all(min(abs(a - old_answer), abs(a - new_answer)) <= 1e-6 for a in loop.answers)
    assert abs(loop.answers[-1] - new_answer) <= 1e-6
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointConfigName"] == f"{name}-v2"
    deadline = time.monotonic() + 20
    while old_pids & instance_pids(server.home, name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not old_pids & instance_pids(server.home, name), "old instance still running"


def _kill_9_loses_no_request(
    server: ModelhostServer, churn_model: ChurnModel
) -> tuple[str, set[int], set[int]]:
    """Kill one of two instances under load: no request lost, the instance replaced.
    Returns the endpoint and its instances before and after."""
    # Default boto3 retry mode: ServiceUnavailable (503) for a request that was in flight
    # on the killed instance is retried by boto3, as against SageMaker.
    sm, rt = server.clients()
    name = unique("kill")
    deploy(sm, name, str(churn_model.artifact), instances=2)
    pids = instance_pids(server.home, name)
    assert len(pids) == 2
    X = churn_model.data.X[:1]
    expected = float(churn_model.expected(X)[0])
    with Loop(rt, name, csv_rows(X)[0]) as loop:
        loop.wait_ok(5)
        victim = sorted(pids)[0]
        os.kill(victim, signal.SIGKILL)
        loop.wait_ok(20)  # answered after the kill, while the instance is replaced
    assert loop.errors == []
    assert loop.ok > 20
    assert all(abs(a - expected) <= 1e-6 for a in loop.answers)
    # The dead instance is replaced.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = instance_pids(server.home, name)
        counts = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
        if len(now) == 2 and victim not in now and counts["CurrentInstanceCount"] == 2:
            return name, pids, now
        time.sleep(0.3)
    pytest.fail(f"instance not replaced: {now}, {counts}")


def test_kill_9_of_an_instance_loses_no_request(
    server: ModelhostServer, churn_model: ChurnModel
) -> None:
    name, before, after = _kill_9_loses_no_request(server, churn_model)
    # Forked from the runtime's zygote, and so is the replacement.
    assert forked_instances(server.home, name) == after
    assert after - before


def test_kill_9_with_the_zygote_off(tmp_path: Path, churn_model: ChurnModel) -> None:
    """`MODELHOST_ZYGOTE=false`: fresh interpreters, the gateway's children, replaced the
    same way."""
    with ModelhostServer(tmp_path / "home", env={**FAST_ENV, "MODELHOST_ZYGOTE": "false"}) as srv:
        name, before, after = _kill_9_loses_no_request(srv, churn_model)
        assert srv.proc is not None
        assert after - before and {parent_pid(pid) for pid in after} == {srv.proc.pid}
        assert not forked_instances(srv.home, name) and not zygote_pids(srv.home)


def test_restart_restores_in_service_endpoints(tmp_path: Path, churn_model: ChurnModel) -> None:
    with ModelhostServer(tmp_path / "home", env=FAST_ENV) as srv:
        sm, rt = srv.clients()
        name = unique("restart")
        deploy(sm, name, f"file://{churn_model.artifact}")
        row = csv_rows(churn_model.data.X[:1])[0]
        before = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
        before_answer = before["Body"].read()
        created = sm.describe_endpoint(EndpointName=name)["CreationTime"]
        srv.restart()
        assert instance_pids(srv.home, name) or True  # resumed without any call from us
        sm, rt = srv.clients()
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
        )
        # boto3's default retries cover the seconds in which the instance starts again.
        deadline = time.monotonic() + 30
        while True:
            try:
                after = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert after["Body"].read() == before_answer
        desc = sm.describe_endpoint(EndpointName=name)
        assert desc["EndpointConfigName"] == name
        assert desc["CreationTime"] == created


def test_s3_artifact_from_s3_compatible_server(
    tmp_path: Path, churn_model: ChurnModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_s3_server() as s3_url:
        s3 = s3_client(s3_url)
        s3.create_bucket(Bucket="models")
        s3.upload_file(str(churn_model.artifact), "models", "churn/model.tar.gz")
        env = {
            **FAST_ENV,
            "MODELHOST_S3_ENDPOINT_URL": s3_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        with ModelhostServer(tmp_path / "home", env=env) as srv:
            sm, rt = srv.clients()
            name = unique("s3")
            deploy(sm, name, "s3://models/churn/model.tar.gz")
            X = churn_model.data.X[:5]
            got = [
                float(
                    rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=r)[
                        "Body"
                    ].read()
                )
                for r in csv_rows(X)
            ]
            np.testing.assert_allclose(got, churn_model.expected(X), atol=1e-6, rtol=0)
            missing = unique("s3-missing")
            deploy(sm, missing, "s3://models/nope/model.tar.gz", wait=False)
            with pytest.raises(Exception):  # noqa: B017 - the waiter's failure type varies
                sm.get_waiter("endpoint_in_service").wait(
                    EndpointName=missing, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
                )
            reason = sm.describe_endpoint(EndpointName=missing)["FailureReason"]
            assert "s3://models/nope/model.tar.gz" in reason


def test_failed_update_keeps_the_old_config_in_service(
    server: ModelhostServer, churn_model: ChurnModel, tmp_path: Path
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name = unique("badupdate")
    deploy(sm, name, str(churn_model.artifact))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "notes.txt").write_text("not a model")
    sm.create_model(
        ModelName=f"{name}-v2",
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(broken)},
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-v2",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-v2",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    row = csv_rows(churn_model.data.X[:1])[0]
    with Loop(rt, name, row) as loop:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=f"{name}-v2")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            desc = sm.describe_endpoint(EndpointName=name)
            if desc["EndpointStatus"] != "Updating":
                break
            time.sleep(0.2)
    assert loop.errors == [] and loop.ok > 0
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == name
    assert "notes.txt" in desc["FailureReason"]
    out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
    assert (
        abs(float(out["Body"].read()) - float(churn_model.expected(churn_model.data.X[:1])[0]))
        <= 1e-6
    )


def test_delete_while_creating_stops_everything(
    server: ModelhostServer, churn_model: ChurnModel
) -> None:
    sm, _ = server.clients()
    name = unique("delcreate")
    deploy(sm, name, str(churn_model.artifact), instances=2, wait=False)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Creating"
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.3, "MaxAttempts": 100}
    )
    deadline = time.monotonic() + 20
    while instance_pids(server.home, name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert instance_pids(server.home, name) == set()
