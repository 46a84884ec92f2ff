"""Transform jobs reading from and writing to an S3-compatible server (moto, on loopback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.s3 import local_s3_server, s3_client
from modelhost.testing.server import ModelhostServer
from tests.jobs.support import transform
from tests.support import FAST_ENV, XGBOOST_IMAGE, ChurnModel, unique

pytestmark = pytest.mark.integration


def test_s3_prefix_in_s3_output_out(tmp_path: Path, churn_model: ChurnModel) -> None:
    X = churn_model.data.X[:400]
    with local_s3_server() as s3_url:
        s3 = s3_client(s3_url)
        bucket = unique("batch")
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="in/day1/a.csv", Body="\n".join(csv_rows(X[:250])))
        s3.put_object(Bucket=bucket, Key="in/day1/b.csv", Body="\n".join(csv_rows(X[250:])))
        s3.put_object(Bucket=bucket, Key="elsewhere/c.csv", Body="1,2")
        env = {
            **FAST_ENV,
            "MODELHOST_S3_ENDPOINT_URL": s3_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        with ModelhostServer(tmp_path / "home", env=env) as srv:
            sm, _ = srv.clients()
            model = unique("s3-batch")
            sm.create_model(
                ModelName=model,
                PrimaryContainer={
                    "Image": XGBOOST_IMAGE,
                    "ModelDataUrl": str(churn_model.artifact),
                },
                ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
            )
            d = transform(
                sm,
                model,
                f"s3://{bucket}/in/",
                f"s3://{bucket}/out",
                BatchStrategy="MultiRecord",
            )
            assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
        keys = sorted(
            o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]
        )
        assert keys == ["out/day1/a.csv.out", "out/day1/b.csv.out"]
        got = np.concatenate(
            [
                np.array(
                    s3.get_object(Bucket=bucket, Key=k)["Body"].read().split(), dtype=np.float32
                )
                for k in keys
            ]
        )
        np.testing.assert_allclose(got, churn_model.expected(X), rtol=1e-6)
