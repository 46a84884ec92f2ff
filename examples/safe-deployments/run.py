"""Production variants and safe deployments against a running modelhost, with plain boto3.

    modelhost serve &
    eval "$(modelhost credentials)"       # the admin key, for boto3 and the native calls
    python examples/safe-deployments/run.py --endpoint-url http://127.0.0.1:8080

1. A/B: two variants with `initial_weight=1` each split traffic about evenly.
2. Canary with auto-rollback: an update to a broken model goes to a canary share of the
   instances, a 5XX alarm fires, and all traffic returns to the old model by itself.
3. Shadow: a candidate model gets a copy of every request; the report compares answers.
4. Bandit: rewards move traffic to the variant that earns more.

Everything except the alarm, the shadow report and the bandit calls (modelhost's native API,
`/api/...`) is the SageMaker API, unchanged but for `endpoint_url`.
"""

from __future__ import annotations

import argparse
import random
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
BROKEN = """
def model_fn(model_dir):
    return None


def predict_fn(data, model):
    raise RuntimeError("v3 is broken")
"""


def production_variant(
    model_name: str,
    instance_type: str,
    initial_instance_count: int = 1,
    variant_name: str = "",
    initial_weight: float = 1,
) -> dict[str, Any]:
    """What `sagemaker.session.production_variant` returns."""
    return {
        "ModelName": model_name,
        "InstanceType": instance_type,
        "InitialInstanceCount": initial_instance_count,
        "VariantName": variant_name or "AllTraffic",
        "InitialVariantWeight": initial_weight,
    }


def build_models(tmp: Path) -> tuple[Path, Path, Path, list[str]]:
    from modelhost.testing import churn

    train, test = churn.make_churn(4000, seed=0).split(test_fraction=0.2, seed=0)
    v1 = churn.write_xgboost_artifact(churn.train_xgboost(train, num_round=60), tmp / "v1")
    v2 = churn.write_xgboost_artifact(churn.train_xgboost(train, num_round=20), tmp / "v2")
    (tmp / "v3" / "code").mkdir(parents=True)
    (tmp / "v3" / "code" / "inference.py").write_text(BROKEN)
    v3 = tmp / "v3" / "model.tar.gz"
    with tarfile.open(v3, "w:gz") as tar:
        tar.add(tmp / "v3" / "code" / "inference.py", arcname="code/inference.py")
    return v1, v2, v3, churn.csv_rows(test.X[:50])


class Demo:
    def __init__(self, url: str, prefix: str) -> None:
        # The key comes from the usual chain (`eval "$(modelhost credentials)"` exports it);
        # the native calls are signed with the same key, the way boto3 signs.
        session = boto3.Session(region_name="us-east-1")
        creds = session.get_credentials()
        if creds is None:
            raise SystemExit('no AWS credentials: run eval "$(modelhost credentials)" first')
        self.credentials = (creds.access_key, creds.secret_key)
        self.url = url
        self.prefix = prefix
        self.sm = session.client("sagemaker", endpoint_url=url)
        self.rt = session.client("sagemaker-runtime", endpoint_url=url)
        self.endpoints: list[str] = []

    def native(self, method: str, path: str, body: Any = None) -> Any:
        from modelhost.gateway.auth.client import call_native

        return call_native(self.url, method, path, self.credentials, body)

    def model(self, name: str, artifact: Path) -> str:
        self.sm.create_model(
            ModelName=name, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": artifact.as_uri()}
        )
        return name

    def endpoint(self, name: str, config: str) -> None:
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
        self.endpoints.append(name)
        self.sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )

    def invoke(self, endpoint: str, row: str, **kw: Any) -> dict[str, Any]:
        out: dict[str, Any] = self.rt.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body=row, **kw
        )
        return out

    def cleanup(self) -> None:
        for name in self.endpoints:
            self.sm.delete_endpoint(EndpointName=name)


def ab_test(demo: Demo, v1: str, v2: str, rows: list[str]) -> str:
    name = f"{demo.prefix}-ab"
    demo.sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            production_variant(v1, "ml.m5.large", 1, "Variant1", initial_weight=1),
            production_variant(v2, "ml.m5.large", 1, "Variant2", initial_weight=1),
        ],
    )
    demo.endpoint(name, name)
    served = Counter(
        demo.invoke(name, rows[i % len(rows)])["InvokedProductionVariant"] for i in range(400)
    )
    print(f"1. A/B split over 400 requests: {dict(sorted(served.items()))}")
    return name


def canary_rollback(demo: Demo, v1: str, v3: str, rows: list[str]) -> None:
    name = f"{demo.prefix}-canary"
    for config, model, count in ((name, v1, 2), (f"{name}-v3", v3, 2)):
        demo.sm.create_endpoint_config(
            EndpointConfigName=config,
            ProductionVariants=[production_variant(model, "ml.m5.large", count)],
        )
    demo.endpoint(name, name)
    demo.native(
        "PUT",
        f"/api/alarms/{name}-5xx",
        {
            "MetricName": "Invocation5XXErrors",
            "Dimensions": [{"Name": "EndpointName", "Value": name}],
            "Statistic": "Sum",
            "Period": 1,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
    )
    results: Counter[str] = Counter()
    stop = threading.Event()

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            try:
                demo.invoke(name, rows[i % len(rows)])
                results["ok"] += 1
            except demo.rt.exceptions.ModelError:
                results["failed"] += 1
            i += 1

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        demo.sm.update_endpoint(
            EndpointName=name,
            EndpointConfigName=f"{name}-v3",
            DeploymentConfig={
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                        "WaitIntervalInSeconds": 60,
                    },
                    "MaximumExecutionTimeoutInSeconds": 600,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": f"{name}-5xx"}]},
            },
        )
        for _ in range(600):
            desc = demo.sm.describe_endpoint(EndpointName=name)
            if desc["EndpointStatus"] != "Updating":
                break
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    print(f"2. Canary to a broken model, {results['ok']} requests ok, {results['failed']} failed:")
    print(f"   {desc['EndpointStatus']} on {desc['EndpointConfigName']}: {desc['FailureReason']}")
    for event in demo.native("GET", f"/api/endpoints/{name}/events")["Events"]:
        stamp = time.strftime("%H:%M:%S", time.localtime(event["Time"]))
        print(f"   {stamp}  {event['Status']:<17} {event['Message']}")


def shadow(demo: Demo, v1: str, v2: str, rows: list[str]) -> None:
    name = f"{demo.prefix}-shadow"
    demo.sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[production_variant(v1, "ml.m5.large", 1, "Production")],
        ShadowProductionVariants=[production_variant(v2, "ml.m5.large", 1, "Shadow")],
    )
    demo.endpoint(name, name)
    for row in rows:
        demo.invoke(name, row)
    report: dict[str, Any] = {"ShadowVariants": []}
    for _ in range(100):  # the copies go out after the answers; wait for their pairs
        report = demo.native("GET", f"/api/endpoints/{name}/shadow-report?tolerance=0.05")
        if report["ShadowVariants"] and report["ShadowVariants"][0]["Pairs"] >= len(rows):
            break
        time.sleep(0.1)
    (v,) = report["ShadowVariants"]
    print(f"3. Shadow report ({v['Pairs']} pairs):")
    print(f"   exact agreement {v['ExactAgreement']:.0%}, within 0.05: {v['NumericAgreement']:.0%}")
    for side in ("Production", "Shadow"):
        s = v[side]
        print(
            f"   {side.lower():<10} p50 {s['LatencyP50Us'] / 1000:.2f} ms  "
            f"p99 {s['LatencyP99Us'] / 1000:.2f} ms  errors {s['ErrorRate']:.0%}"
        )


def bandit(demo: Demo, name: str, rows: list[str]) -> None:
    demo.native("PUT", f"/api/endpoints/{name}/routing", {"Strategy": "ThompsonSampling"})
    rates = {"Variant1": 0.2, "Variant2": 0.6}  # Variant2 earns more (say, conversions)
    rand = random.Random(0)
    for batch in range(10):
        rewards = []
        for i in range(40):
            inference_id = f"{name}-{batch}-{i}"
            variant = demo.invoke(name, rows[i % len(rows)], InferenceId=inference_id)[
                "InvokedProductionVariant"
            ]
            rewards.append(
                {"InferenceId": inference_id, "Reward": float(rand.random() < rates[variant])}
            )
        demo.native("POST", f"/api/endpoints/{name}/rewards", {"Rewards": rewards})
    weights = {
        v["VariantName"]: v["CurrentWeight"]
        for v in demo.sm.describe_endpoint(EndpointName=name)["ProductionVariants"]
    }
    print(
        "4. Bandit after 400 rewarded requests: "
        + ", ".join(f"{k} {w:.0%}" for k, w in sorted(weights.items()))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--prefix", default="safe")
    args = parser.parse_args()
    demo = Demo(args.endpoint_url, args.prefix)
    with tempfile.TemporaryDirectory() as tmp:
        a1, a2, a3, rows = build_models(Path(tmp))
        v1 = demo.model(f"{args.prefix}-v1", a1)
        v2 = demo.model(f"{args.prefix}-v2", a2)
        v3 = demo.model(f"{args.prefix}-v3", a3)
        try:
            ab = ab_test(demo, v1, v2, rows)
            canary_rollback(demo, v1, v3, rows)
            shadow(demo, v1, v2, rows)
            bandit(demo, ab, rows)
        finally:
            demo.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
