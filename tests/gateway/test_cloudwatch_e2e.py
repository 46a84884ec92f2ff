"""CloudWatch against a real server with real boto3 clients (rpc-v2-cbor, JSON 1.0 and
query), the AWS CLI, and the alarms that drive a deployment's rollback."""

from __future__ import annotations

import collections
import copy
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from modelhost.telemetry.sketch import RELATIVE_ACCURACY
from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.gateway.support import canary_one_instance, create_model_and_config, deployment_events
from tests.support import FAST_ENV, XGBOOST_IMAGE, ChurnModel, Loop, cli, unique

pytestmark = pytest.mark.integration

NO_RETRY = {"retries": {"max_attempts": 1, "mode": "standard"}}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _window(minutes: int = 10) -> dict[str, dt.datetime]:
    return {"StartTime": _now() - dt.timedelta(minutes=minutes), "EndTime": _now()}


def _forced(server: ModelhostServer, protocol: str, tmp_path: Path, creds: Any = None) -> Any:
    """A `cloudwatch` client built from a copy of botocore's model that lists only
    `protocol`, so botocore speaks it instead of rpc-v2-cbor."""
    model = copy.deepcopy(botocore.loaders.Loader().load_service_model("cloudwatch", "service-2"))
    model["metadata"]["protocol"] = protocol
    model["metadata"]["protocols"] = [protocol]
    where = tmp_path / protocol / "cloudwatch" / model["metadata"]["apiVersion"]
    where.mkdir(parents=True)
    (where / "service-2.json.gz").write_bytes(gzip.compress(json.dumps(model).encode()))
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(tmp_path / protocol))
    key_id, secret = creds or server.credentials
    client = boto3.Session(botocore_session=session).client(
        "cloudwatch",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(**NO_RETRY),
    )
    assert client.meta.service_model.protocol == protocol
    return client


def test_invocations_per_variant_and_latency_percentiles(
    server: ModelhostServer, sm: Any, rt: Any, churn_model: ChurnModel
) -> None:
    name = unique("cwmetrics")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)},
    )
    variants = [
        {
            "VariantName": v,
            "ModelName": name,
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "InitialVariantWeight": 1.0,
        }
        for v in ("A", "B")
    ]
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    row = csv_rows(churn_model.data.X[:1])[0]
    served: collections.Counter[str] = collections.Counter()
    for _ in range(40):
        out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
        served[out["InvokedProductionVariant"]] += 1
    cw = server.client("cloudwatch", **NO_RETRY)
    assert cw.meta.service_model.protocol == "smithy-rpc-v2-cbor"
    for variant in ("A", "B"):
        dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": variant}]
        got = cw.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName="Invocations",
            Dimensions=dims,
            Period=60,
            Statistics=["Sum"],
            **_window(),
        )
        assert sum(p["Sum"] for p in got["Datapoints"]) == served[variant]
        latency = cw.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName="ModelLatency",
            Dimensions=dims,
            Period=600,
            Statistics=["Minimum", "Maximum", "SampleCount"],
            ExtendedStatistics=["p0", "p50", "p99", "p100"],
            **_window(),
        )["Datapoints"]
        if served[variant] == 0:
            continue
        (point,) = latency
        assert point["SampleCount"] == served[variant] and point["Unit"] == "Microseconds"
        ext, low, high = point["ExtendedStatistics"], point["Minimum"], point["Maximum"]
        assert abs(ext["p0"] - low) <= RELATIVE_ACCURACY * low * 1.001
        assert abs(ext["p100"] - high) <= RELATIVE_ACCURACY * high * 1.001
        assert low * 0.99 <= ext["p50"] <= ext["p99"] <= high * 1.01
    listed = cw.list_metrics(
        Namespace="AWS/SageMaker", Dimensions=[{"Name": "EndpointName", "Value": name}]
    )["Metrics"]
    assert {"Invocations", "ModelLatency", "OverheadLatency", "Invocation5XXErrors"} <= {
        m["MetricName"] for m in listed
    }
    # Metric math: the endpoint's total invocations across its variants.
    stat = {"Period": 60, "Stat": "Sum"}
    queries = [
        {
            "Id": f"m{v}",
            "ReturnData": False,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SageMaker",
                    "MetricName": "Invocations",
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": name},
                        {"Name": "VariantName", "Value": v},
                    ],
                },
                **stat,
            },
        }
        for v in ("A", "B")
    ]
    queries.append({"Id": "total", "Expression": "SUM(METRICS())", "Label": "All"})
    data = cw.get_metric_data(MetricDataQueries=queries, **_window())["MetricDataResults"]
    assert [r["Id"] for r in data] == ["total"] and sum(data[0]["Values"]) == 40
    # The CLI reads the same through the CloudWatch API.
    out = cli(server, "metrics", name, "--since", "10m")
    assert out.returncode == 0, out.stderr
    totals = [
        int(line.split()[2])
        for line in out.stdout.splitlines()
        if line.startswith("  Invocations Sum")
    ]
    assert sum(totals) == 40 and "A" in out.stdout and "B" in out.stdout
    detail = cli(server, "metrics", name, "--metric", "ModelLatency", "--since", "5m")
    assert detail.returncode == 0 and "p99" in detail.stdout and "Average" in detail.stdout


def test_percentiles_of_published_values_are_within_the_sketch_error(
    server: ModelhostServer,
) -> None:
    cw = server.client("cloudwatch", **NO_RETRY)
    namespace = unique("Shop")
    values = [float(v) for v in range(1, 1001)]
    for chunk in range(0, 1000, 150):
        part = values[chunk : chunk + 150]
        cw.put_metric_data(
            Namespace=namespace,
            MetricData=[{"MetricName": "CartValue", "Values": part, "Unit": "Count"}],
        )
    got = cw.get_metric_statistics(
        Namespace=namespace,
        MetricName="CartValue",
        Period=600,
        ExtendedStatistics=["p50", "p99"],
        Statistics=["Sum", "SampleCount"],
        **_window(),
    )["Datapoints"]
    assert sum(p["SampleCount"] for p in got) == 1000 and sum(p["Sum"] for p in got) == 500500
    if len(got) == 1:  # the values did not straddle a period boundary
        ext = got[0]["ExtendedStatistics"]
        assert abs(ext["p99"] - 990) <= RELATIVE_ACCURACY * 990 + 1
        assert abs(ext["p50"] - 500) <= RELATIVE_ACCURACY * 500 + 1


def test_query_and_json_protocols_the_cli_and_roles(
    server: ModelhostServer, tmp_path: Path
) -> None:
    namespace = unique("Kpi")
    for protocol in ("query", "json"):
        cw = _forced(server, protocol, tmp_path)
        dims = [{"Name": "Protocol", "Value": protocol}]
        cw.put_metric_data(
            Namespace=namespace,
            MetricData=[{"MetricName": "Orders", "Dimensions": dims, "Value": 3.0}],
        )
        got = cw.get_metric_statistics(
            Namespace=namespace,
            MetricName="Orders",
            Dimensions=dims,
            Period=60,
            Statistics=["Sum"],
            **_window(),
        )
        assert sum(p["Sum"] for p in got["Datapoints"]) == 3.0
        alarm = f"{namespace}-{protocol}"
        cw.put_metric_alarm(
            AlarmName=alarm,
            Namespace=namespace,
            MetricName="Orders",
            Dimensions=dims,
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanThreshold",
        )
        cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="drill")
        (described,) = cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"]
        assert described["StateValue"] == "ALARM" and described["Dimensions"] == dims
        history = cw.describe_alarm_history(AlarmName=alarm)["AlarmHistoryItems"]
        assert history[0]["HistoryItemType"] == "StateUpdate"
        with pytest.raises(ClientError) as bad:
            cw.get_metric_statistics(
                Namespace=namespace, MetricName="Orders", Period=60, **_window()
            )
        assert bad.value.response["Error"]["Code"] == "InvalidParameterCombination"
        with pytest.raises(ClientError) as missing:
            cw.delete_alarms(AlarmNames=["no-such-alarm"])
        assert missing.value.response["Error"]["Code"] == "ResourceNotFound"
        cw.delete_alarms(AlarmNames=[alarm])
    # The AWS CLI, with its own botocore.
    key_id, secret = server.credentials
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    aws = Path(sys.executable).with_name("aws")
    out = subprocess.run(
        [
            str(aws),
            "cloudwatch",
            "list-metrics",
            "--namespace",
            namespace,
            "--endpoint-url",
            server.url,
            "--output",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert {m["MetricName"] for m in json.loads(out.stdout)["Metrics"]} == {"Orders"}
    # Roles: an invoker reads metrics and publishes its own, a deployer sets alarms.
    created = server.call("POST", "/api/keys", {"Role": "invoker", "Endpoints": "*"})
    invoker = _forced(
        server, "query", tmp_path / "invoker", (created["AccessKeyId"], created["SecretAccessKey"])
    )
    invoker.list_metrics(Namespace=namespace)
    invoker.put_metric_data(Namespace=namespace, MetricData=[{"MetricName": "X", "Value": 1}])
    with pytest.raises(ClientError) as denied:
        invoker.put_metric_alarm(
            AlarmName="nope",
            Namespace=namespace,
            MetricName="X",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanThreshold",
        )
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "cloudwatch:PutMetricAlarm" in denied.value.response["Error"]["Message"]


def test_cloudwatch_alarm_rolls_back_a_canary(
    server: ModelhostServer, churn_model: ChurnModel, failing_artifact: Path
) -> None:
    sm, rt = server.clients(**NO_RETRY)
    cw = server.client("cloudwatch", **NO_RETRY)
    name = unique("cwcanary")
    create_model_and_config(sm, name, churn_model.artifact, 1)
    create_model_and_config(sm, f"{name}-green", failing_artifact, 4)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    alarm = f"{name}-5xx"
    # What SageMaker users write for AutoRollbackConfiguration, against modelhost.
    cw.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": name}],
        Statistic="Sum",
        Period=1,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    row = csv_rows(churn_model.data.X[:1])[0]
    with Loop(rt, name, row):
        sm.update_endpoint(
            EndpointName=name,
            EndpointConfigName=f"{name}-green",
            DeploymentConfig=canary_one_instance(alarm),
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            desc = sm.describe_endpoint(EndpointName=name)
            if desc["EndpointStatus"] != "Updating":
                break
            time.sleep(0.2)
    assert desc["EndpointStatus"] == "InService" and desc["EndpointConfigName"] == name
    assert f"alarm {alarm} went into ALARM" in desc["FailureReason"]
    assert "RollingBack" in [e["Status"] for e in deployment_events(server, name)]
    history = cw.describe_alarm_history(AlarmName=alarm, HistoryItemType="StateUpdate")
    assert any("to ALARM" in h["HistorySummary"] for h in history["AlarmHistoryItems"])
    errors = cw.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[
            {"Name": "EndpointName", "Value": name},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        Period=60,
        Statistics=["Sum"],
        **_window(),
    )["Datapoints"]
    assert sum(p["Sum"] for p in errors) >= 1
    # The native API is a view of the same alarm.
    with urllib.request.urlopen(server.signed("GET", "/api/alarms"), timeout=10) as resp:
        native = {a["AlarmName"]: a for a in json.loads(resp.read())["MetricAlarms"]}
    assert native[alarm]["MetricName"] == "Invocation5XXErrors"
    described = cw.describe_alarms_for_metric(
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": name}],
    )["MetricAlarms"]
    assert [a["AlarmName"] for a in described] == [alarm]
    assert described[0]["StateValue"] == native[alarm]["StateValue"]


def test_series_and_alarms_survive_a_restart(tmp_path: Path) -> None:
    with ModelhostServer(tmp_path / "home", env=FAST_ENV) as srv:
        cw = srv.client("cloudwatch", **NO_RETRY)
        cw.put_metric_data(
            Namespace="Shop",
            MetricData=[{"MetricName": "Orders", "Values": [1.0, 2.0, 3.0], "Unit": "Count"}],
        )
        cw.put_metric_alarm(
            AlarmName="orders-high",
            Namespace="Shop",
            MetricName="Orders",
            ExtendedStatistic="p90",
            Period=60,
            EvaluationPeriods=2,
            Threshold=100.0,
            ComparisonOperator="GreaterThanThreshold",
            AlarmDescription="too many orders",
        )
        cw.disable_alarm_actions(AlarmNames=["orders-high"])
        before = cw.get_metric_statistics(
            Namespace="Shop", MetricName="Orders", Period=3600, Statistics=["Sum"], **_window()
        )["Datapoints"]
        srv.restart()
        cw = srv.client("cloudwatch", **NO_RETRY)
        after = cw.get_metric_statistics(
            Namespace="Shop", MetricName="Orders", Period=3600, Statistics=["Sum"], **_window()
        )["Datapoints"]
        assert sum(p["Sum"] for p in after) == sum(p["Sum"] for p in before) == 6.0
        (alarm,) = cw.describe_alarms(AlarmNames=["orders-high"])["MetricAlarms"]
        assert alarm["ExtendedStatistic"] == "p90" and alarm["ActionsEnabled"] is False
        assert alarm["AlarmDescription"] == "too many orders"
        assert cw.list_metrics(Namespace="Shop")["Metrics"][0]["MetricName"] == "Orders"
