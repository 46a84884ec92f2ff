"""A real gateway with PostgreSQL as its metadata store, driven through boto3."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows
from modelhost.testing.postgres import PostgresCluster
from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV, ChurnModel, deploy, unique

pytestmark = pytest.mark.integration


def _invoke(server: ModelhostServer, name: str, churn_model: ChurnModel) -> None:
    """One invocation, retried while the endpoint's instance (re)starts (an endpoint is
    InService from the store while a new gateway starts its instances, as after a restart)."""
    _, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    row = churn_model.data.X[:1]
    deadline = time.monotonic() + 90
    while True:
        try:
            resp = rt.invoke_endpoint(
                EndpointName=name, ContentType="text/csv", Body=csv_rows(row)[0]
            )
            break
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ServiceUnavailable" or (
                time.monotonic() > deadline
            ):
                raise
            time.sleep(0.2)
    answer = float(resp["Body"].read())
    assert answer == pytest.approx(float(churn_model.expected(row)[0]), rel=1e-5)


def test_an_endpoint_lives_in_postgresql_not_in_the_home(
    postgres: PostgresCluster, churn_model: ChurnModel, tmp_path: Path
) -> None:
    """Deployed through one gateway; a gateway with another, empty state directory on the
    same database serves the same endpoint (the state is in PostgreSQL)."""
    env = {**FAST_ENV, "MODELHOST_DATABASE_URL": postgres.fresh_database_url()}
    name = unique("pg")
    with ModelhostServer(tmp_path / "home-a", env=env) as first:
        sm, _ = first.clients()
        deploy(sm, name, str(churn_model.artifact))
        _invoke(first, name, churn_model)
    with ModelhostServer(tmp_path / "home-b", env=env) as second:
        sm, _ = second.clients()
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
        assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == [name]
        assert sm.describe_model(ModelName=name)["PrimaryContainer"]["ModelDataUrl"] == str(
            churn_model.artifact
        )
        _invoke(second, name, churn_model)
        sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
        assert sm.list_endpoints()["Endpoints"] == []
