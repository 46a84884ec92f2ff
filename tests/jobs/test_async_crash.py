"""A gateway killed with SIGKILL in the middle of 200 async requests loses none and
completes none twice (the output bucket is versioned: one version per output)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from modelhost.store.metadata import MetadataStore
from modelhost.store.queue import AsyncQueue
from modelhost.testing.churn import csv_rows
from modelhost.testing.s3 import local_s3_server, s3_client
from modelhost.testing.server import ModelhostServer
from tests.gateway.support import csv_floats
from tests.jobs.async_support import ASYNC_ENV, async_config, deploy_async, metric_value
from tests.jobs.support import wait_for
from tests.support import FAST_ENV, ChurnModel, unique

pytestmark = pytest.mark.integration

REQUESTS = 200


def test_gateway_kill_loses_nothing_and_writes_nothing_twice(
    tmp_path: Path, churn_model: ChurnModel
) -> None:
    X = churn_model.data.X[:REQUESTS]
    expected = churn_model.expected(X)
    with local_s3_server() as s3_url:
        s3 = s3_client(s3_url)
        bucket = unique("async-crash")
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for i, row in enumerate(csv_rows(X)):
            s3.put_object(Bucket=bucket, Key=f"in/{i}.csv", Body=row + "\n")
        env = {**FAST_ENV, **ASYNC_ENV, "MODELHOST_S3_ENDPOINT_URL": s3_url}
        server = ModelhostServer(tmp_path / "home", env=env).start()
        try:
            sm, rt = server.clients()
            name = unique("async-crash")
            config = async_config(f"s3://{bucket}/out", f"s3://{bucket}/fail", per_instance=1)
            deploy_async(sm, name, churn_model.artifact, config)
            outputs = {}
            for i in range(REQUESTS):
                answer = rt.invoke_endpoint_async(
                    EndpointName=name,
                    InputLocation=f"s3://{bucket}/in/{i}.csv",
                    ContentType="text/csv",
                    InferenceId=f"req-{i}",
                )
                outputs[i] = answer["OutputLocation"].split(f"s3://{bucket}/", 1)[1]

            def written(prefix: str) -> int:
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                return sum(len(page.get("Contents", [])) for page in pages)

            # Kill -9 once some answers are written (one request at a time, so the rest are
            # queued or running), then start again on the same home.
            wait_for(lambda: written("out/") >= 20, timeout_s=120)
            at_kill = written("out/")
            assert server.proc is not None
            server.proc.kill()
            server.proc.wait()
            server.proc = None
            server.start()
            wait_for(lambda: written("out/") == REQUESTS, timeout_s=240)
            # Between the restart and the new instance, the queue had no capacity: the
            # scale-from-zero signal was raised, and the requests waited instead of failing.
            cw = server.client("cloudwatch")
            dims = [{"Name": "EndpointName", "Value": name}]
            assert metric_value(cw, "HasBacklogWithoutCapacity", dims, "Maximum") == 1
        finally:
            server.stop()
        assert written("fail/") == 0
        for i, key in outputs.items():
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            np.testing.assert_allclose(csv_floats(body), [expected[i]], rtol=1e-5)
        versions: Counter[str] = Counter()
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="out/")
        for page in pages:
            versions.update(v["Key"] for v in page.get("Versions", []))
        assert len(versions) == REQUESTS
        assert max(versions.values()) == 1, versions.most_common(3)
        # Every request finished once, as recorded in the queue; those running at the kill
        # were leased again after their lease ran out (attempts 2).
        store = MetadataStore(server.metadata_url)
        try:
            counts = AsyncQueue(store).counts(name)
        finally:
            store.close()
        assert counts == {"Succeeded": REQUESTS}
        print(f"answers written before the kill: {at_kill} of {REQUESTS}")
