"""Take the README's dashboard screenshot (docs/images/dashboard.png) from a real server.

    python bench/dashboard_screenshot.py [--out docs/images/dashboard.png] [--traffic-s 60]

Starts `modelhost serve` in a temporary home, deploys the churn model (modelhost.testing)
as two endpoints the way the seeds' dashboard compares two instance types (one of them
with two variants), sends them traffic from two threads, rolls a canary of a broken model
back on the first with a 5XX alarm, runs a small transform job, then signs in to the
dashboard in Debian's Chromium (Playwright, as the tests do) and saves the compare view.
Everything on the picture is real; it takes two to three minutes.
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from modelhost.testing.browser import browser_page, missing_reason, sign_in
from modelhost.testing.churn import csv_rows, make_churn, train_xgboost, write_xgboost_artifact
from modelhost.testing.server import ModelhostServer

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
FAST = {
    "MODELHOST_HEALTH_CHECK_INTERVAL_S": "0.5",
    "MODELHOST_RECONCILE_INTERVAL_S": "0.2",
    "MODELHOST_SHUTDOWN_GRACE_S": "5",
    "MODELHOST_LOG_LEVEL": "warning",
}
BROKEN = """
def model_fn(model_dir):
    return None


def predict_fn(data, model):
    raise RuntimeError("the new model is broken on purpose")
"""


def model_and_config(sm: Any, name: str, variants: list[tuple[str, Path, str, int]]) -> None:
    """One model per variant: (variant, artifact, instance type, instance count)."""
    production = []
    for variant, artifact, instance_type, count in variants:
        model = f"{name}-{variant}".lower()
        container: dict[str, Any] = {"ModelDataUrl": str(artifact)}
        if artifact.name != "broken.tar.gz":
            container["Image"] = IMAGE
        sm.create_model(ModelName=model, PrimaryContainer=container)
        production.append(
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": count,
                "InstanceType": instance_type,
                "InitialVariantWeight": 1,
            }
        )
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=production)


def traffic(rt: Any, endpoint: str, rows: list[str], stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        try:
            rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=rows[i % 50])
        except Exception:
            time.sleep(0.01)  # the canary's failures are the point
        i += 1
        time.sleep(0.02 if (i // 200) % 2 else 0.005)  # a varying pace


def roll_back_a_canary(server: ModelhostServer, sm: Any, endpoint: str, broken: Path) -> None:
    alarm = f"{endpoint}-5xx"
    server.client("cloudwatch").put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}],
        Statistic="Sum",
        Period=1,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    model_and_config(sm, f"{endpoint}-v2", [("AllTraffic", broken, "ml.m5.large", 2)])
    sm.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=f"{endpoint}-v2",
        DeploymentConfig={
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "WaitIntervalInSeconds": 30,
                    "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                },
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},
        },
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] != "Updating":
            return
        time.sleep(0.5)


def artifacts(tmp: Path) -> tuple[Path, Path, Path, list[str]]:
    data = make_churn(n_rows=2000, seed=7)
    for sub in ("big", "small"):
        (tmp / sub).mkdir()
    big = write_xgboost_artifact(train_xgboost(data, num_round=100, seed=0), tmp / "big")
    small = write_xgboost_artifact(train_xgboost(data, num_round=10, seed=1), tmp / "small")
    code = tmp / "broken" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(BROKEN)
    broken = tmp / "broken" / "broken.tar.gz"
    with tarfile.open(broken, "w:gz") as tar:
        tar.add(code / "inference.py", arcname="code/inference.py")
    return big, small, broken, csv_rows(data.X[:2000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    parser.add_argument("--traffic-s", type=float, default=60.0)
    args = parser.parse_args()
    reason = missing_reason()
    if reason is not None:
        raise SystemExit(reason)
    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as name:
        tmp = Path(name)
        big, small, broken, rows = artifacts(tmp)
        with ModelhostServer(tmp / "home", env=FAST) as server:
            sm, rt = server.clients()
            first, second = "churn-m5-large", "churn-c5-xlarge"
            model_and_config(sm, first, [("AllTraffic", big, "ml.m5.large", 1)])
            model_and_config(
                sm,
                second,
                [("Variant1", big, "ml.c5.xlarge", 1), ("Variant2", small, "ml.c5.xlarge", 1)],
            )
            for endpoint in (first, second):
                sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
            for endpoint in (first, second):
                sm.get_waiter("endpoint_in_service").wait(
                    EndpointName=endpoint, WaiterConfig={"Delay": 1, "MaxAttempts": 240}
                )
            stop = threading.Event()
            threads = [
                threading.Thread(target=traffic, args=(rt, e, rows, stop), daemon=True)
                for e in (first, second)
            ]
            for t in threads:
                t.start()
            time.sleep(args.traffic_s / 3)
            roll_back_a_canary(server, sm, first, broken)
            batch = tmp / "batch"
            batch.mkdir()
            (batch / "input.csv").write_text("\n".join(rows) + "\n")
            sm.create_transform_job(
                TransformJobName="churn-scoring",
                ModelName=f"{first}-alltraffic",
                TransformInput={
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(batch)}},
                    "ContentType": "text/csv",
                    "SplitType": "Line",
                },
                TransformOutput={"S3OutputPath": str(tmp / "out"), "AssembleWith": "Line"},
                TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
            )
            time.sleep(args.traffic_s * 2 / 3)
            shoot(server, args.out, first, second)
            stop.set()
            for t in threads:
                t.join(10)
    print(f"saved {args.out}")


def shoot(server: ModelhostServer, out: Path, first: str, second: str) -> None:
    key_id, secret = server.credentials
    with browser_page(width=1600, height=1300) as page:
        sign_in(page, server.url, key_id, secret)
        page.goto(f"{server.url}/dashboard#endpoint={first}&compare={second}&range=5m")
        page.wait_for_function(
            """(names) => names.every((n) => {
                const c = document.querySelector(`[data-detail="${n}"] [data-chart="cpu"]`);
                return c && Number(c.dataset.nonzero || 0) > 0;
            })""",
            arg=[first, second],
            timeout=120_000,
        )
        page.wait_for_timeout(500)  # the last chart's paint
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        print(json.dumps({"refreshes": page.evaluate("document.body.dataset.refreshes")}))


if __name__ == "__main__":
    main()
