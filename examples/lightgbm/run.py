"""Train a LightGBM churn model, deploy it with plain boto3, check served == in-process.

    python examples/lightgbm/run.py                                       # own server
    python examples/lightgbm/run.py --endpoint-url http://127.0.0.1:8080  # a running one

Without --endpoint-url the script starts a modelhost server on a free loopback port (its
state in a temporary directory) and stops it at the end. Exit status 0 when every served
probability equals LightGBM's own within 1e-6, 1 otherwise. Nothing is downloaded: the
data comes from `modelhost.testing.churn`.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows, make_churn
from modelhost.testing.server import ModelhostServer, boto3_clients

# Any image naming lightgbm/lgbm selects the built-in runtime, e.g. a SageMaker-style
# "123456789012.dkr.ecr.us-east-1.amazonaws.com/lightgbm-inference:4"; no Image at all
# works too (model.txt is recognised by its header).
IMAGE = "lightgbm"
ROLE = "arn:aws:iam::123456789012:role/modelhost"
# Served predictions are LightGBM's own, computed from the same float64 features; the
# only difference allowed is the text round trip of a double, far below this.
TOLERANCE = 1e-6


def build(directory: Path) -> tuple[lgb.Booster, Path, np.ndarray]:
    """Train on synthetic churn data; write model.tar.gz holding model.txt."""
    train, test = make_churn(3000, seed=0).split(test_fraction=0.2, seed=0)
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1}
    booster = lgb.train({**params, "seed": 0}, lgb.Dataset(train.X, train.y), 100)
    payload = booster.model_to_string().encode()
    artifact = directory / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        info = tarfile.TarInfo("model.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return booster, artifact, test.X[:10]


def deploy(sm: Any, name: str, artifact: Path) -> None:
    """The calls a SageMaker user already makes; only the client's endpoint_url differs."""
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": artifact.as_uri()},
        ExecutionRoleArn=ROLE,
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


def check(runtime: Any, name: str, booster: lgb.Booster, X: np.ndarray) -> bool:
    """Invoke with CSV and JSON; compare with booster.predict."""
    expected = booster.predict(X)
    rows = csv_rows(X)
    csv = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body="\n".join(rows))
    served_csv = np.array(csv["Body"].read().split(), dtype=np.float64)
    one = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=rows[0])
    served_one = float(one["Body"].read())
    doc = runtime.invoke_endpoint(
        EndpointName=name,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"instances": X.tolist()}),
    )
    served_json = np.array([p["score"] for p in json.loads(doc["Body"].read())["predictions"]])

    print(f"{'in-process':>12} {'csv':>12} {'json':>12}")
    for e, c, j in zip(expected, served_csv, served_json, strict=True):
        print(f"{e:12.8f} {c:12.8f} {j:12.8f}")
    worst = max(
        float(np.abs(served_csv - expected).max()),
        float(np.abs(served_json - expected).max()),
        abs(served_one - float(expected[0])),
    )
    print(f"largest difference: {worst:.3g} (tolerance {TOLERANCE:g})")
    return worst <= TOLERANCE


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--endpoint-url", help="a running modelhost; default: start one")
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        booster, artifact, X = build(Path(tmp))
        server = None if args.endpoint_url else ModelhostServer(Path(tmp) / "home").start()
        url = args.endpoint_url or (server.url if server else "")
        name = f"lightgbm-example-{uuid.uuid4().hex[:6]}"
        sm, runtime = boto3_clients(url)
        try:
            print(f"deploying {name} on {url} ...")
            deploy(sm, name, artifact)
            ok = check(runtime, name, booster, X)
        finally:
            if not args.keep or server:
                for call, key in (
                    (sm.delete_endpoint, "EndpointName"),
                    (sm.delete_endpoint_config, "EndpointConfigName"),
                    (sm.delete_model, "ModelName"),
                ):
                    try:
                        call(**{key: name})
                    except ClientError as exc:
                        print(f"cleanup: {exc}")
            if server:
                server.stop()
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
