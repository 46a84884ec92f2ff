"""Convert a scikit-learn churn classifier to ONNX, deploy it with boto3, check the answers.

    python examples/onnx/run.py                                       # own server
    python examples/onnx/run.py --endpoint-url http://127.0.0.1:8080  # a running one

Without --endpoint-url the script starts a modelhost server on a free loopback port (its
state in a temporary directory) and stops it at the end. Exit status 0 when the served
probabilities equal onnxruntime's in-process ones within 1e-6 and scikit-learn's within
1e-5, 1 otherwise. Nothing is downloaded: the data comes from `modelhost.testing.churn`.
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

import numpy as np
import onnxruntime as ort
from botocore.exceptions import ClientError
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from modelhost.testing.churn import N_FEATURES, csv_rows, make_churn
from modelhost.testing.server import ModelhostServer, boto3_clients

# Any image naming onnx selects the built-in runtime, e.g. a SageMaker-style
# "123456789012.dkr.ecr.us-east-1.amazonaws.com/onnx-inference:1"; no Image at all
# works too (a *.onnx file is recognised).
IMAGE = "onnx"
ROLE = "arn:aws:iam::123456789012:role/modelhost"
# The graph's outputs are `label` and `probabilities`; serve the second.
ENVIRONMENT = {"MH_INSTANCE_ONNX_OUTPUT": "probabilities"}
# Served vs onnxruntime in-process: the same float32 graph on the same float32 inputs
# (CSV and JSON carry the values exactly), so only rounding noise is allowed.
TOLERANCE_ONNX = 1e-6
# Served vs scikit-learn: the graph computes in float32, scikit-learn in float64; a
# float32 probability carries ~7 significant digits, so 1e-5 absolute is float32 noise.
TOLERANCE_SKLEARN = 1e-5


def build(directory: Path) -> tuple[Pipeline, bytes, Path, np.ndarray]:
    """Fit a scaled logistic regression; convert it with skl2onnx; write model.tar.gz."""
    train, test = make_churn(3000, seed=0).split(test_fraction=0.2, seed=0)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    clf.fit(train.X, train.y.astype(int))
    # zipmap=False: probabilities as a plain (rows, classes) tensor rather than a list of
    # {class: probability} maps (modelhost flattens those too, but plain is simpler).
    graph = to_onnx(
        clf,
        initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
        options={"zipmap": False},
    ).SerializeToString()
    artifact = directory / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        info = tarfile.TarInfo("model.onnx")
        info.size = len(graph)
        tar.addfile(info, io.BytesIO(graph))
    return clf, graph, artifact, test.X[:10]


def deploy(sm: Any, name: str, artifact: Path) -> None:
    """The calls a SageMaker user already makes; only the client's endpoint_url differs."""
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": artifact.as_uri(),
            "Environment": ENVIRONMENT,
        },
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


def check(runtime: Any, name: str, clf: Pipeline, graph: bytes, X: np.ndarray) -> bool:
    """Invoke with CSV and JSON; compare with onnxruntime and scikit-learn in-process."""
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    in_onnx = session.run(["probabilities"], {"input": X})[0]
    in_sklearn = clf.predict_proba(X)

    csv = runtime.invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Body="\n".join(csv_rows(X))
    )
    served_csv = np.array(json.loads(csv["Body"].read())["predictions"])  # JSON by default
    doc = runtime.invoke_endpoint(
        EndpointName=name,
        ContentType="application/json",
        Accept="text/csv",
        Body=json.dumps({"instances": X.tolist()}),
    )
    lines = doc["Body"].read().decode().splitlines()
    served_json = np.array([[float(v) for v in line.split(",")] for line in lines])

    print(f"{'sklearn':>12} {'onnx':>12} {'served csv':>12} {'served json':>12}   P(churn)")
    for s, o, c, j in zip(in_sklearn, in_onnx, served_csv, served_json, strict=True):
        print(f"{s[1]:12.8f} {o[1]:12.8f} {c[1]:12.8f} {j[1]:12.8f}")
    vs_onnx = max(float(np.abs(a - in_onnx).max()) for a in (served_csv, served_json))
    vs_sklearn = max(float(np.abs(a - in_sklearn).max()) for a in (served_csv, served_json))
    print(f"largest difference vs onnxruntime: {vs_onnx:.3g} (tolerance {TOLERANCE_ONNX:g})")
    print(f"largest difference vs scikit-learn: {vs_sklearn:.3g} (tolerance {TOLERANCE_SKLEARN:g})")
    return vs_onnx <= TOLERANCE_ONNX and vs_sklearn <= TOLERANCE_SKLEARN


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--endpoint-url", help="a running modelhost; default: start one")
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clf, graph, artifact, X = build(Path(tmp))
        server = None if args.endpoint_url else ModelhostServer(Path(tmp) / "home").start()
        url = args.endpoint_url or (server.url if server else "")
        name = f"onnx-example-{uuid.uuid4().hex[:6]}"
        sm, runtime = boto3_clients(url)
        try:
            print(f"deploying {name} on {url} ...")
            deploy(sm, name, artifact)
            ok = check(runtime, name, clf, graph, X)
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
