"""Script mode: serve an XGBoost model with your own input/predict/output handlers.

    python examples/script-mode/run.py [--endpoint-url http://127.0.0.1:8080]

Builds `model.tar.gz` the way the SageMaker Python SDK repacks it — the model file at the
root and `code/inference.py` (plus a helper module) beside it — deploys it with
SageMaker's XGBoost image URI, and sends raw customer records as JSON: the script encodes
them, predicts and answers with labelled probabilities. Exit 0 when they equal XGBoost's
in-process answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

import numpy as np

from modelhost.testing.churn import make_churn, train_xgboost, xgboost_model_bytes
from modelhost.testing.server import ModelhostServer, boto3_clients

HERE = Path(__file__).resolve().parent
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def build(work: Path) -> tuple[Path, list[dict], np.ndarray]:
    data = make_churn(3000, seed=0)
    booster = train_xgboost(data, num_round=50)
    artifact = work / "model.tar.gz"
    model_file = work / "xgboost-model"
    model_file.write_bytes(xgboost_model_bytes(booster))
    with tarfile.open(artifact, "w:gz") as tar:
        tar.add(model_file, arcname="xgboost-model")
        for path in sorted((HERE / "code").glob("*.py")):
            tar.add(path, arcname=f"code/{path.name}")
    customers = []
    for i in range(5):
        record = {name: values[i].item() for name, values in data.raw.items() if name != "Churn?"}
        customers.append({"id": f"customer-{i}", **record})
    return artifact, customers, booster.inplace_predict(data.X[:5])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--endpoint-url", help="a running modelhost; default: start one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        artifact, customers, expected = build(work)
        server = None if args.endpoint_url else ModelhostServer(work / "home").start()
        url = args.endpoint_url or (server.url if server else "")
        sm, rt = boto3_clients(url)
        name = f"script-example-{uuid.uuid4().hex[:6]}"
        try:
            sm.create_model(
                ModelName=name, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(artifact)}
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
            out = rt.invoke_endpoint(
                EndpointName=name, ContentType="application/json", Body=json.dumps(customers)
            )
            answer = json.loads(out["Body"].read())
            for item, want in zip(answer, expected, strict=True):
                print(
                    f"{item['id']}: served {item['churn_probability']:.6f} "
                    f"in-process {float(want):.6f} churn={item['churn']}"
                )
            worst = max(
                abs(a["churn_probability"] - float(e))
                for a, e in zip(answer, expected, strict=True)
            )
            print(f"max |diff| {worst:.2e}")
            return 0 if worst <= 1e-6 else 1
        finally:
            for call, key in (
                (sm.delete_endpoint, "EndpointName"),
                (sm.delete_endpoint_config, "EndpointConfigName"),
                (sm.delete_model, "ModelName"),
            ):
                try:
                    call(**{key: name})
                except Exception as exc:  # cleanup goes on
                    print(f"cleanup: {exc}", file=sys.stderr)
            if server is not None:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
