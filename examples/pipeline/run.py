"""A serial inference pipeline: scikit-learn preprocessing → XGBoost, in one call.

    python examples/pipeline/run.py [--endpoint-url http://127.0.0.1:8080]

Builds two artifacts: a scikit-learn ColumnTransformer that one-hot encodes the churn
data's State, Area Code and plan columns (served in script mode by SageMaker's
scikit-learn image) and an XGBoost churn model trained on the encoded features (served by
SageMaker's XGBoost image). Creates one model with both as `Containers` and
`InferenceExecutionConfig={"Mode": "Serial"}`, deploys it, and sends raw customer rows as
CSV: the first container encodes them, its text/csv answer becomes the second container's
request, and the endpoint answers XGBoost's scores as JSON (the client's Accept). Exit 0
when they equal running both steps in-process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

import joblib
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "code"))

from churn_preprocess import INPUT_COLUMNS, build_preprocessor, parse_csv, transform  # noqa: E402

from modelhost.testing.churn import make_churn, train_xgboost, write_xgboost_artifact  # noqa: E402
from modelhost.testing.server import ModelhostServer, boto3_clients  # noqa: E402

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def raw_csv(data, rows) -> str:  # type: ignore[no-untyped-def]
    """The raw table's rows `rows` as headerless CSV in INPUT_COLUMNS order."""
    return "".join(",".join(str(data.raw[c][i]) for c in INPUT_COLUMNS) + "\n" for i in rows)


def build(work: Path) -> tuple[Path, Path, str, np.ndarray]:
    """(preprocessor artifact, XGBoost artifact, a request body, the in-process scores)."""
    data = make_churn(3000, seed=0)
    preprocessor = build_preprocessor().fit(parse_csv(raw_csv(data, range(len(data)))))
    features = transform(preprocessor, raw_csv(data, range(len(data))))
    assert np.array_equal(features.astype(np.float32), data.X)  # same encoding as training
    booster = train_xgboost(data, num_round=50)

    pre_dir = work / "preprocess"
    pre_dir.mkdir()
    joblib.dump(preprocessor, pre_dir / "model.joblib")
    pre_artifact = work / "preprocess.tar.gz"
    with tarfile.open(pre_artifact, "w:gz") as tar:
        tar.add(pre_dir / "model.joblib", arcname="model.joblib")
        for path in sorted((HERE / "code").glob("*.py")):
            tar.add(path, arcname=f"code/{path.name}")
    xgb_artifact = write_xgboost_artifact(booster, work / "xgboost")

    body = raw_csv(data, range(8))
    expected = booster.inplace_predict(transform(preprocessor, body).astype(np.float32))
    return pre_artifact, xgb_artifact, body, np.asarray(expected)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--endpoint-url", help="a running modelhost; default: start one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pre_artifact, xgb_artifact, body, expected = build(work)
        server = None if args.endpoint_url else ModelhostServer(work / "home").start()
        url = args.endpoint_url or (server.url if server else "")
        sm, rt = boto3_clients(url)
        name = f"pipeline-example-{uuid.uuid4().hex[:6]}"
        try:
            sm.create_model(
                ModelName=name,
                Containers=[
                    {
                        "ContainerHostname": "preprocess",
                        "Image": SKLEARN_IMAGE,
                        "ModelDataUrl": str(pre_artifact),
                    },
                    {
                        "ContainerHostname": "xgboost",
                        "Image": XGBOOST_IMAGE,
                        "ModelDataUrl": str(xgb_artifact),
                    },
                ],
                InferenceExecutionConfig={"Mode": "Serial"},
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
                EndpointName=name, ContentType="text/csv", Accept="application/json", Body=body
            )
            scores = [p["score"] for p in json.loads(out["Body"].read())["predictions"]]
            for line, got, want in zip(body.splitlines(), scores, expected, strict=True):
                print(f"{line[:40]}...  served {got:.6f}  in-process {float(want):.6f}")
            worst = max(abs(g - float(w)) for g, w in zip(scores, expected, strict=True))
            print(f"{out['ContentType']} from the last container; max |diff| {worst:.2e}")
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
