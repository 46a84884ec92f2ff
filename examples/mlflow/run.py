"""Save an MLflow pyfunc model built on the churn data, deploy its folder with boto3, invoke it.

    python examples/mlflow/run.py [--endpoint-url http://127.0.0.1:8080] [--keep]

Without `--endpoint-url` a modelhost server is started in a temporary directory and stopped
at the end. The model is a custom `mlflow.pyfunc.PythonModel` wrapping a scikit-learn
gradient-boosting classifier: it answers a churn probability and a yes/no decision per
customer. It is saved with `mlflow.pyfunc.save_model` and a signature inferred from the
data (the 69 named float columns), packed as `model.tar.gz` holding the model *folder*,
deployed with plain boto3 calls, and invoked with SageMaker-style headerless CSV and with
MLflow's `dataframe_split` JSON. Nothing talks to an MLflow tracking server. Exit status 0
when every served probability equals the in-process one within 1e-6.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from modelhost.frameworks.mlflow import import_mlflow
from modelhost.testing import churn
from modelhost.testing.server import ModelhostServer, boto3_clients

# `import mlflow` the way modelhost's runtime does: telemetry off, import-time noise silenced.
mlflow = import_mlflow()
from mlflow.models import infer_signature  # noqa: E402

# Any image URI naming mlflow selects modelhost's MLflow runtime (no Image: auto-detected).
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:3.1"
ROLE = "arn:aws:iam::123456789012:role/modelhost"
COLUMNS = list(churn.FEATURE_NAMES)
# The served model is the same pickled estimator run on the same float32 inputs, and JSON
# and CSV carry floats with round-trip precision: we expect exact equality, and allow 1e-6
# only so a differently built BLAS on the server could not fail the example.
TOLERANCE = 1e-6


class ChurnModel(mlflow.pyfunc.PythonModel):
    """Probability of churn plus a decision at `threshold`, one row per customer.

    Defined in this script, so cloudpickle stores the class by value inside the model:
    the server needs mlflow and scikit-learn, not this file.
    """

    def __init__(self, estimator: Any, threshold: float = 0.5) -> None:
        self.estimator = estimator
        self.threshold = threshold

    # A DataFrame type hint keeps MLflow from asking for (and validating) list type hints.
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        proba = self.estimator.predict_proba(model_input[COLUMNS])[:, 1]
        return pd.DataFrame({"churn_probability": proba, "churn": proba >= self.threshold})


def build(directory: Path) -> tuple[Path, ChurnModel, pd.DataFrame, np.ndarray]:
    """Train, save the pyfunc folder, pack it; returns (artifact, model, test X, test y)."""
    train, test = churn.make_churn(4000, seed=0).split(test_fraction=0.2, seed=0)
    frame = pd.DataFrame(train.X, columns=COLUMNS)
    estimator = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(frame, train.y)
    model = ChurnModel(estimator)
    test_frame = pd.DataFrame(test.X, columns=COLUMNS)
    folder = directory / "churn-model"
    with warnings.catch_warnings():
        # MLflow 3.17 compares the example's column Index with range(); pandas 3 warns
        # that this comparison will change meaning. Harmless here: the names are strings.
        warnings.filterwarnings("ignore", message="Operation with range is deprecated")
        mlflow.pyfunc.save_model(
            str(folder),
            python_model=model,
            signature=infer_signature(frame, model.predict(None, frame.head())),
            input_example=frame.head(2),  # without one MLflow warns at save
            pip_requirements=["scikit-learn", "pandas"],
        )
    artifact = directory / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        # `model.tar.gz` wraps the folder (as `tar czf model.tar.gz churn-model/` would);
        # the runtime finds MLmodel at the root or one folder down.
        tar.add(folder, arcname=folder.name)
    return artifact, model, test_frame, test.y


def deploy(sm: Any, name: str, artifact: Path) -> None:
    """create_model → create_endpoint_config → create_endpoint → wait, as against SageMaker."""
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


def delete(sm: Any, name: str) -> None:
    sm.delete_endpoint(EndpointName=name)
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)


def check(runtime: Any, name: str, frame: pd.DataFrame, expected: pd.DataFrame) -> bool:
    """Invoke with headerless CSV and with MLflow's JSON; True when both match `expected`."""
    csv_resp = runtime.invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Body=churn.csv_body(frame.to_numpy())
    )
    # MLflow's answer: {"predictions": [{"churn_probability": ..., "churn": ...}, ...]}.
    from_csv = pd.DataFrame(json.loads(csv_resp["Body"].read())["predictions"])
    body = {"dataframe_split": frame.to_dict(orient="split", index=False)}
    json_resp = runtime.invoke_endpoint(
        EndpointName=name,
        ContentType="application/json",
        Accept="text/csv",
        Body=json.dumps(body),
    )
    lines = json_resp["Body"].read().decode().split("\n")
    from_json = pd.DataFrame(
        [(float(p), c == "True") for p, c in (line.split(",") for line in lines)],
        columns=["churn_probability", "churn"],
    )
    print(f"{'served (CSV)':>14} {'served (JSON)':>14} {'in-process':>14}  churn")
    for a, b, e, c in zip(
        from_csv["churn_probability"],
        from_json["churn_probability"],
        expected["churn_probability"],
        expected["churn"],
        strict=True,
    ):
        print(f"{a:>14.8f} {b:>14.8f} {e:>14.8f}  {'yes' if c else 'no'}")
    want = expected["churn_probability"].to_numpy()
    worst = max(
        np.abs(from_csv["churn_probability"].to_numpy() - want).max(),
        np.abs(from_json["churn_probability"].to_numpy() - want).max(),
    )
    print(f"largest difference: {worst:.2e} (tolerance {TOLERANCE:g})")
    decisions = (
        from_csv["churn"].tolist() == from_json["churn"].tolist() == expected["churn"].tolist()
    )
    return bool(worst <= TOLERANCE) and decisions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint-url", help="a running modelhost (default: start one)")
    parser.add_argument("--name", default="churn-mlflow-example", help="model/endpoint name")
    parser.add_argument("--rows", type=int, default=8, help="test rows to send")
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        artifact, model, test_frame, test_y = build(Path(tmp))
        # Half customers who churned, half who stayed, so both answers show up.
        half = args.rows // 2
        rows = np.r_[
            np.flatnonzero(test_y == 1)[:half], np.flatnonzero(test_y == 0)[: args.rows - half]
        ]
        frame = test_frame.iloc[rows].reset_index(drop=True)
        expected = model.predict(None, frame)
        server = None
        url = args.endpoint_url
        if url is None:
            server = ModelhostServer(Path(tmp) / "home").start()
            url = server.url
            print(f"started modelhost at {url}")
        try:
            sm, runtime = boto3_clients(url)
            deploy(sm, args.name, artifact)
            try:
                ok = check(runtime, args.name, frame, expected)
            finally:
                if not args.keep:
                    delete(sm, args.name)
        finally:
            if server is not None:
                server.stop()
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
