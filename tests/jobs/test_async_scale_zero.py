"""An asynchronous endpoint scales to zero instances and back, as SageMaker documents it:
MinCapacity 0, target tracking on ApproximateBacklogSizePerInstance, and a step policy on
an alarm over HasBacklogWithoutCapacity. Real servers, real boto3; one evaluation period
is one second (MODELHOST_SCALING_PERIOD_S=1)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.jobs.async_support import (
    ASYNC_ENV,
    async_config,
    backlog_alarm,
    deploy_async,
    local_path,
    metric_value,
    scale_to_zero_policies,
)
from tests.scaling.support import SCALING_ENV, activities, counts, register, resource, wait_for
from tests.support import FAST_ENV, ChurnModel, deploy, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    env = {**FAST_ENV, **ASYNC_ENV, **SCALING_ENV}
    with ModelhostServer(tmp_path_factory.mktemp("asynczero-home"), env=env) as srv:
        yield srv


def test_async_endpoint_idles_to_zero_and_a_request_brings_it_back(
    server: ModelhostServer, churn_model: ChurnModel, tmp_path: Path
) -> None:
    sm, rt = server.clients()
    aas, cw = server.client("application-autoscaling"), server.client("cloudwatch")
    name = unique("asynczero")
    deploy_async(sm, name, churn_model.artifact, async_config(f"file://{tmp_path / 'out'}"))
    register(aas, name, 0, 1)
    step_arn = scale_to_zero_policies(aas, resource(name))
    backlog_alarm(cw, name, step_arn)

    started = time.monotonic()
    wait_for(f"{name} to idle to 0 instances", lambda: counts(sm, name) == (0, 0, "InService"))
    to_zero_s = time.monotonic() - started
    # Workers wait at zero: the request is queued, the alarm scales the variant out.
    source = tmp_path / "in.csv"
    source.write_text("\n".join(csv_rows(churn_model.data.X[:3])))
    answer = rt.invoke_endpoint_async(
        EndpointName=name, InputLocation=str(source), ContentType="text/csv"
    )
    queued = time.monotonic()
    output = local_path(answer["OutputLocation"])
    wait_for(f"{name} back at 1 instance", lambda: counts(sm, name)[0] == 1)
    back_s = time.monotonic() - queued
    wait_for("the output", output.exists, 60)
    answered_s = time.monotonic() - queued
    scores = [float(v) for v in output.read_text().replace("\n", ",").split(",") if v.strip()]
    assert len(scores) == 3 and all(0.0 <= v <= 1.0 for v in scores)
    dims = [{"Name": "EndpointName", "Value": name}]
    assert metric_value(cw, "HasBacklogWithoutCapacity", dims, "Maximum") == 1.0
    causes = [a["Cause"] for a in activities(aas, name)]
    assert any("backlog-without-capacity" in c for c in causes), causes
    # Idle again: back to zero, 15 one-second periods after the queue emptied.
    emptied = time.monotonic()
    wait_for(f"{name} to idle to 0 again", lambda: counts(sm, name) == (0, 0, "InService"))
    again_s = time.monotonic() - emptied
    print(
        f"\nscale to zero: {to_zero_s:.1f} s after the policies were put, {again_s:.1f} s "
        f"after the last output; from zero: {back_s:.1f} s to an instance serving, "
        f"{answered_s:.1f} s to the output"
    )


def test_real_time_endpoint_refuses_min_capacity_zero(
    server: ModelhostServer, churn_model: ChurnModel
) -> None:
    sm, _ = server.clients()
    aas = server.client("application-autoscaling")
    name = unique("rtzero")
    deploy(sm, name, str(churn_model.artifact))
    with pytest.raises(ClientError) as err:
        register(aas, name, 0, 2)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "MinCapacity" in err.value.response["Error"]["Message"]
    register(aas, name, 1, 2)
    sm.delete_endpoint(EndpointName=name)
