"""The autoscaler beside other changes, through boto3 against a real server with a
1-second period: a manual UpdateEndpointWeightsAndCapacities is respected (within the
target's min/max), and a scheduled action due while the gateway was down runs on restart."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

from modelhost.testing.server import ModelhostServer
from tests.scaling.support import (
    DIMENSION,
    activities,
    autoscaling_points,
    churn_endpoint,
    counts,
    kill_gateway,
    put_policy,
    register,
    resource,
    restart,
    scaling_server,
    target_tracking,
    wait_count,
    wait_for,
    wait_in_service,
)
from tests.support import ChurnModel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    with scaling_server(tmp_path_factory, "interplay-home") as srv:
        yield srv


def _manual(sm: Any, name: str, count: int) -> None:
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": count}],
    )
    wait_in_service(sm, name)


def _periods_since(server: ModelhostServer, name: str, start: dt.datetime) -> list[float]:
    """The desired counts the autoscaler recorded once a period since `start`."""
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    points = autoscaling_points(server, name, "DesiredInstanceCount", start, end, 1, ["Maximum"])
    return [p["Maximum"] for p in points]


def test_a_manual_count_is_respected_within_min_and_max(
    server: ModelhostServer, churn_model: ChurnModel
) -> None:
    sm, _rt = server.clients()
    aas = server.client("application-autoscaling")
    name = churn_endpoint(sm, churn_model, "manual")
    register(aas, name, 1, 2)
    # Never scales out; scale-in is off.
    config = target_tracking("SageMakerVariantInvocationsPerInstance", 1e9, DisableScaleIn=True)
    put_policy(aas, name, "invocations", "TargetTrackingScaling", config)
    _manual(sm, name, 2)
    wait_count(sm, name, 2, set())
    # From the next whole second: a pass earlier in this one may have recorded 1.
    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    # Five evaluations later the manual count stands: the policies start from it.
    wait_for("five evaluations", lambda: len(_periods_since(server, name, start)) >= 5)
    assert set(_periods_since(server, name, start)) == {2}
    assert counts(sm, name)[:2] == (2, 2) and activities(aas, name) == []
    # Above MaxCapacity: the next evaluation takes it back to the maximum.
    _manual(sm, name, 3)
    wait_for("the count back at the maximum", lambda: counts(sm, name)[:2] == (2, 2))
    wait_for("the activity to end", lambda: activities(aas, name)[0]["StatusCode"] == "Successful")
    (back,) = activities(aas, name)
    assert back["Description"] == "Setting desired instance count to 2."
    assert back["Cause"] == "desired instance count 3 was above the maximum capacity 2"


def test_a_scheduled_action_due_while_the_gateway_was_down_runs_on_restart(
    server: ModelhostServer, churn_model: ChurnModel
) -> None:
    sm, _rt = server.clients()
    aas = server.client("application-autoscaling")
    name = churn_endpoint(sm, churn_model, "missed")
    register(aas, name, 1, 3)
    due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=8)
    for action, when, low in (("first", due, 3), ("second", due + dt.timedelta(seconds=1), 2)):
        aas.put_scheduled_action(
            ServiceNamespace="sagemaker",
            ScheduledActionName=action,
            ResourceId=resource(name),
            ScalableDimension=DIMENSION,
            Schedule=f"at({when.strftime('%Y-%m-%dT%H:%M:%S')})",
            ScalableTargetAction={"MinCapacity": low},
        )
    # The gateway dies before the actions are due and comes back after.
    kill_gateway(server)
    wait_for("both actions to be due", lambda: time.time() > due.timestamp() + 2, 60.0)
    sm2, aas2 = restart(server, name)
    # Only the latest missed action ran: MinCapacity 2, not 3.
    wait_count(sm2, name, 2, set())
    target = aas2.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource(name)]
    )["ScalableTargets"][0]
    assert target["MinCapacity"] == 2
    causes = [a["Cause"] for a in activities(aas2, name)]
    assert causes[-1].startswith("scheduled action name second was triggered (due at ")
    assert causes[-1].endswith(" while the gateway was down)")
    assert not any("name first" in c for c in causes)
