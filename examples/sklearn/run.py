"""Train a scikit-learn churn classifier, deploy it with plain boto3, compare answers.

    python examples/sklearn/run.py [--endpoint-url http://127.0.0.1:8080]

The artifact is what SageMaker's scikit-learn container serves: `model.joblib` in a
`model.tar.gz`. The image URI is SageMaker's own; modelhost maps it to its built-in
scikit-learn runtime. Exit status 0 when every served label equals scikit-learn's.
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
from sklearn.ensemble import RandomForestClassifier

from modelhost.testing.churn import csv_rows, make_churn
from modelhost.testing.server import ModelhostServer, boto3_clients

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--endpoint-url", help="a running modelhost; default: start one")
    args = parser.parse_args()
    train, test = make_churn(3000, seed=0).split(test_fraction=0.2, seed=0)
    clf = RandomForestClassifier(n_estimators=50, max_depth=6, random_state=0, n_jobs=1)
    clf.fit(train.X, train.y)
    # Five churners and five stayers, so the labels differ.
    X = np.concatenate([test.X[test.y == 1][:5], test.X[test.y == 0][:5]])
    expected = clf.predict(X.astype(np.float64)).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        joblib.dump(clf, work / "model.joblib")
        artifact = work / "model.tar.gz"
        with tarfile.open(artifact, "w:gz") as tar:
            tar.add(work / "model.joblib", arcname="model.joblib")
        server = None if args.endpoint_url else ModelhostServer(work / "home").start()
        url = args.endpoint_url or (server.url if server else "")
        sm, rt = boto3_clients(url)
        name = f"sklearn-example-{uuid.uuid4().hex[:6]}"
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
            csv = rt.invoke_endpoint(
                EndpointName=name, ContentType="text/csv", Body="\n".join(csv_rows(X))
            )
            served_csv = json.loads(csv["Body"].read())  # default Accept: application/json
            npy = rt.invoke_endpoint(
                EndpointName=name,
                ContentType="application/json",
                Body=json.dumps(X.astype(float).tolist()),
            )
            served_json = json.loads(npy["Body"].read())
            print(
                f"scikit-learn: {expected}\nserved (csv): {served_csv}\nserved (json): "
                f"{served_json}"
            )
            ok = served_csv == expected and served_json == expected
            print("match" if ok else "MISMATCH")
            return 0 if ok else 1
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
