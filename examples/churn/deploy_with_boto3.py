"""Deploy an XGBoost model.tar.gz with plain boto3, the way a SageMaker user already does.

Nothing here is modelhost-specific except `endpoint_url`: drop that argument and the same
calls go to Amazon SageMaker (with an s3:// ModelDataUrl and a real execution role).

    python examples/churn/deploy_with_boto3.py --endpoint-url http://127.0.0.1:8080 \
        path/to/model.tar.gz [--rows 5] [--keep]

Without an artifact argument the script builds one from modelhost's synthetic churn data
(`modelhost.testing.churn`), so it runs on a fresh checkout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import boto3

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::123456789012:role/modelhost"


def make_artifact(directory: Path) -> tuple[Path, list[str]]:
    """Train the churn example model; return its model.tar.gz and a few test rows as CSV."""
    from modelhost.testing import churn

    train, test = churn.make_churn(5000, seed=0).split(test_fraction=0.2, seed=0)
    booster = churn.train_xgboost(train, num_round=100)
    return churn.write_xgboost_artifact(booster, directory), churn.csv_rows(test.X[:20])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", nargs="?", help="model.tar.gz holding xgboost-model")
    parser.add_argument("--endpoint-url", required=True, help="modelhost URL, e.g. :8080")
    parser.add_argument("--name", default="churn-xgb-example", help="model/endpoint name")
    parser.add_argument("--rows", type=int, default=5, help="test rows to send")
    parser.add_argument("--csv", help="file of headerless CSV rows to send instead")
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        rows: list[str] = []
        if args.artifact:
            artifact = Path(args.artifact).resolve()
        else:
            artifact, rows = make_artifact(Path(tmp))
            print(f"built {artifact} from the synthetic churn data")
        if args.csv:
            rows = [ln for ln in Path(args.csv).read_text().splitlines() if ln.strip()]
        if not rows:
            parser.error("give --csv rows to send with your own artifact")
        rows = rows[: args.rows]

        # The same clients and calls as against AWS; only endpoint_url differs. The key
        # comes from the usual chain: `eval "$(modelhost credentials)"` exports it.
        session = boto3.Session(region_name="us-east-1")
        sm = session.client("sagemaker", endpoint_url=args.endpoint_url)
        runtime = session.client("sagemaker-runtime", endpoint_url=args.endpoint_url)

        name = args.name
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
        print(f"waiting for endpoint {name} ...")
        try:
            sm.get_waiter("endpoint_in_service").wait(
                EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
            print(sm.describe_endpoint(EndpointName=name)["EndpointStatus"])

            for row in rows:
                response = runtime.invoke_endpoint(
                    EndpointName=name, ContentType="text/csv", Body=row
                )
                print(f"{response['Body'].read().decode().strip():>22}  <- {row[:50]}...")
            response = runtime.invoke_endpoint(
                EndpointName=name, ContentType="text/csv", Body="\n".join(rows)
            )
            # SageMaker's XGBoost answers a multi-row CSV request with one comma-joined line.
            answer = response["Body"].read().decode().strip().split(",")
            print("all rows in one request:", ", ".join(answer))
        finally:
            if not args.keep:
                sm.delete_endpoint(EndpointName=name)
                sm.delete_endpoint_config(EndpointConfigName=name)
                sm.delete_model(ModelName=name)
                print("deleted endpoint, endpoint config and model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
