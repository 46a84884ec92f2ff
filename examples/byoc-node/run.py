"""Host a Node.js model server with modelhost, through unmodified boto3.

Trains a logistic regression on the synthetic churn data, ships its weights and
server.js in one model.tar.gz, deploys it with `Image="command:node server.js"` and checks
the served probabilities against scikit-learn's.

    python examples/byoc-node/run.py [--endpoint-url http://127.0.0.1:8080]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from modelhost.testing.churn import make_churn
from modelhost.testing.server import ModelhostServer, boto3_clients

HERE = Path(__file__).resolve().parent
NAME = "churn-node"


def build(work: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """model.tar.gz with model.json + server.js; returns it with test rows and answers."""
    data = make_churn(3000, seed=3)
    # Scaled features keep lbfgs well-conditioned; the scaler is folded into the weights.
    scaler = StandardScaler().fit(data.X)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(data.X), data.y)
    coef = clf.coef_[0] / scaler.scale_
    intercept = float(clf.intercept_[0] - np.dot(coef, scaler.mean_))
    model_dir = work / "model"
    model_dir.mkdir()
    (model_dir / "model.json").write_text(
        json.dumps({"coef": coef.tolist(), "intercept": intercept})
    )
    shutil.copy(HERE / "server.js", model_dir / "server.js")
    artifact = work / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    X = data.X[:20].astype(np.float64)
    return artifact, X, clf.predict_proba(scaler.transform(X))[:, 1]


def run(url: str, work: Path) -> int:
    artifact, X, expected = build(work)
    sm, rt = boto3_clients(url)
    sm.create_model(
        ModelName=NAME,
        PrimaryContainer={"Image": "command:node server.js", "ModelDataUrl": str(artifact)},
    )
    try:
        sm.create_endpoint_config(
            EndpointConfigName=NAME,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": NAME,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        )
        sm.create_endpoint(EndpointName=NAME, EndpointConfigName=NAME)
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=NAME, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
        # repr() of each float64 so Node parses exactly the numbers scikit-learn saw.
        body = "\n".join(",".join(repr(float(v)) for v in row) for row in X)
        csv_out = rt.invoke_endpoint(EndpointName=NAME, ContentType="text/csv", Body=body)
        served_csv = np.array([float(v) for v in csv_out["Body"].read().split()])
        json_out = rt.invoke_endpoint(
            EndpointName=NAME,
            ContentType="application/json",
            Body=json.dumps({"instances": X.astype(np.float32).astype(float).tolist()}),
        )
        served_json = np.array(json.loads(json_out["Body"].read())["predictions"])
        # Float64 in both places; only the summation order differs.
        worst = max(np.max(np.abs(served_csv - expected)), np.max(np.abs(served_json - expected)))
        for got, want in zip(served_csv[:5], expected[:5], strict=True):
            print(f"served {got:.12f}  scikit-learn {want:.12f}")
        print(f"max |diff| over {len(X)} rows, CSV and JSON: {worst:.2e}")
        return 0 if worst <= 1e-9 else 1
    finally:
        for call, key in (
            (sm.delete_endpoint, "EndpointName"),
            (sm.delete_endpoint_config, "EndpointConfigName"),
            (sm.delete_model, "ModelName"),
        ):
            try:
                call(**{key: NAME})
            except Exception as exc:  # cleanup goes on
                print(f"cleanup: {exc}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint-url", help="a running modelhost (default: start one)")
    args = parser.parse_args()
    if shutil.which("node") is None:
        print("node is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.endpoint_url:
            return run(args.endpoint_url, work)
        with ModelhostServer(work / "home") as server:
            return run(server.url, work)


if __name__ == "__main__":
    sys.exit(main())
