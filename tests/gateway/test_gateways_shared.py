"""Two gateways on one PostgreSQL share more than routes: the lead moves when the leader
loses its database connection (and it steps down), access keys live in the database,
metric rollups and alarms are merged, serverless endpoints answer through any gateway."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from modelhost.store.coordination import LEADER_LOCK_KEY, libpq_url
from modelhost.testing.churn import csv_rows
from modelhost.testing.postgres import PostgresCluster
from modelhost.testing.server import boto3_clients
from tests.gateway.scaleout_support import two_gateways, until
from tests.support import ChurnModel, deploy, unique

pytestmark = pytest.mark.integration

NO_RETRY = {"retries": {"max_attempts": 1, "mode": "standard"}}


def lock_holders(url: str) -> list[tuple[int, str]]:
    """(backend pid, application_name) of the sessions holding the leader lock of the
    database at `url` (pg_locks shows every database's: other tests' servers may share
    this PostgreSQL)."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = 0 AND l.objid = %s",
            (LEADER_LOCK_KEY,),
        ).fetchall()
    return [(int(pid), str(name)) for pid, name in rows]


def invoke_code(rt: Any) -> str:
    """The error code of an invocation of a nonexistent endpoint."""
    try:
        rt.invoke_endpoint(EndpointName="none", Body=b"1", ContentType="text/csv")
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return ""


def test_the_leader_steps_down_when_its_connection_dies(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = postgres.fresh_database_url()
    with two_gateways(tmp_path, url) as (a, b):
        holders = until(lambda: lock_holders(url), "a leader")
        assert [name.split("#")[0] for _, name in holders] == [a.url]
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (holders[0][0],))
        cut = time.monotonic()
        until(lambda: "took the lead" in b.log_path.read_text(), "b takes the lead", 30)
        lead_s = time.monotonic() - cut
        until(lambda: "stepping down" in a.log_path.read_text(), "a steps down", 30)
        print(
            f"leader's connection cut: b led {lead_s:.2f} s later, "
            f"a had stepped down by {time.monotonic() - cut:.2f} s"
        )
        # Exactly one leader, b, for as long as b lives; a follows (and campaigns).
        for _ in range(20):
            assert [n.split("#")[0] for _, n in lock_holders(url)] == [b.url]
            time.sleep(0.1)
        assert "took the lead" not in a.log_path.read_text()
        # b took the lock with the next epoch: a's leader-only writes are fenced from then.
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            epoch, holder = conn.execute("SELECT epoch, holder FROM leadership").fetchone()
        assert epoch == 2 and holder.split("#")[0] == b.url
        # a serves as a follower: control calls through it reach b's controller.
        sm, _ = a.clients(**NO_RETRY)
        assert sm.list_endpoints()["Endpoints"] == []


def test_access_keys_live_in_the_database(postgres: PostgresCluster, tmp_path: Path) -> None:
    """Homes that share only the master key accept the same keys; a key created through
    one gateway works on the other, and a revoke through the other is honoured by both."""
    url = postgres.fresh_database_url()
    with two_gateways(tmp_path, url) as (a, b):
        assert a.credentials == b.credentials  # one bootstrap admin key, in the database
        assert not (tmp_path / "b/auth/keys.json").exists()
        created = a.call("POST", "/api/keys", {"Role": "invoker", "Endpoints": "*"})
        creds = (created["AccessKeyId"], created["SecretAccessKey"])
        rt_a, rt_b = (boto3_clients(g.url, credentials=creds, **NO_RETRY)[1] for g in (a, b))
        # Authenticated, the key is turned away by the endpoint (unknown), not the key.
        created_at = time.monotonic()
        until(lambda: invoke_code(rt_b) == "ValidationError", "b accepts a's new key", 5)
        accepted_s = time.monotonic() - created_at
        b.call("DELETE", f"/api/keys/{creds[0]}")
        revoked_at = time.monotonic()
        for rt in (rt_a, rt_b):
            until(lambda rt=rt: invoke_code(rt) == "UnrecognizedClientException", "revoked", 5)
        print(
            f"a key created through a worked on b after {accepted_s:.2f} s; revoked through "
            f"b, refused by both after {time.monotonic() - revoked_at:.2f} s"
        )


def _invoke(rt: Any, name: str, body: str) -> str | None:
    """The answer, or None while the follower has no route yet or no instance serves."""
    try:
        out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ValidationError", "ServiceUnavailable"):
            return None
        raise
    return str(out["Body"].read().decode())


def test_metrics_alarms_and_serverless_through_the_follower(
    postgres: PostgresCluster, churn_model: ChurnModel, tmp_path: Path
) -> None:
    """Invocations served by the follower count in the leader's CloudWatch answers and in
    an alarm (put through the follower, evaluated by the leader); a serverless endpoint
    answers through the follower from zero (its instance starts on the leader)."""
    url = postgres.fresh_database_url()
    extra = {"MODELHOST_METRICS_ROLLUP_PERIOD_S": "2", "MODELHOST_SERVERLESS_IDLE_S": "60"}
    X = churn_model.data.X[:1]
    row = csv_rows(X)[0]
    with two_gateways(tmp_path, url, extra) as (a, b):
        sm_a, _ = a.clients(**NO_RETRY)
        sm_b, rt_b = b.clients(**NO_RETRY)
        real, serverless = unique("shm"), unique("shs")
        deploy(sm_a, real, str(churn_model.artifact))
        config = {"MemorySizeInMB": 1024, "MaxConcurrency": 2}
        deploy(sm_a, serverless, str(churn_model.artifact), serverless=config)
        assert (
            sm_b.describe_endpoint(EndpointName=serverless)["ProductionVariants"][0][
                "CurrentInstanceCount"
            ]
            == 0
        )
        started = time.monotonic()
        answer = until(lambda: _invoke(rt_b, serverless, row), "serverless through b", 120)
        print(f"serverless from zero through the follower: {time.monotonic() - started:.2f} s")
        assert float(answer) == pytest.approx(float(churn_model.expected(X)[0]), rel=1e-5)
        assert list((a.home / "logs" / serverless).rglob("i-*.log"))  # started by the leader

        cw_a, cw_b = a.client("cloudwatch"), b.client("cloudwatch")
        cw_b.put_metric_alarm(
            AlarmName=f"{real}-traffic", Namespace="AWS/SageMaker", MetricName="Invocations",
            Dimensions=[{"Name": "EndpointName", "Value": real}], Statistic="Sum", Period=10,
            EvaluationPeriods=1, Threshold=0, ComparisonOperator="GreaterThanThreshold",
        )  # fmt: skip
        served = 0
        alarm_at = time.monotonic()

        def alarmed_through_b() -> bool:
            nonlocal served
            if _invoke(rt_b, real, row) is not None:
                served += 1
            alarm = cw_b.describe_alarms(AlarmNames=[f"{real}-traffic"])["MetricAlarms"]
            return bool(alarm) and alarm[0]["StateValue"] == "ALARM"

        until(alarmed_through_b, "the leader's alarm over b's invocations", 90)
        assert served > 0

        def leader_counts() -> float:
            now = time.time()
            points = cw_a.get_metric_statistics(
                Namespace="AWS/SageMaker", MetricName="Invocations",
                Dimensions=[{"Name": "EndpointName", "Value": real},
                            {"Name": "VariantName", "Value": "AllTraffic"}],
                StartTime=now - 600, EndTime=now + 60, Period=60, Statistics=["Sum"],
            )["Datapoints"]  # fmt: skip
            return sum(p["Sum"] for p in points)

        alarm_s = time.monotonic() - alarm_at
        until(lambda: leader_counts() >= served, "b's invocations in a's CloudWatch", 30)
        print(f"alarm over b's traffic in ALARM (seen through b) {alarm_s:.2f} s after it was put")
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            per_period = conn.execute(
                "SELECT max(n) FROM (SELECT gateway, second, count(*) AS n "
                "FROM metric_rollups GROUP BY gateway, second) AS per"
            ).fetchone()
        print(
            f"metric_rollups: at most {per_period[0] if per_period else 0} rows per "
            "gateway per rollup period (two endpoints, one instance)"
        )
        listed = cw_a.list_metrics(
            Namespace="AWS/SageMaker", MetricName="Invocations",
            Dimensions=[{"Name": "EndpointName", "Value": real}],
        )["Metrics"]  # fmt: skip
        assert listed  # a never served it: the series is b's
