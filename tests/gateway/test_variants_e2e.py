"""Production variants: weighted split, TargetVariant, live weight and capacity changes."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.support import ChurnModel, Loop, instance_pids

pytestmark = pytest.mark.integration


def _split(rt: Any, name: str, row: str, n: int) -> Counter[str]:
    return Counter(
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)[
            "InvokedProductionVariant"
        ]
        for _ in range(n)
    )


def test_equal_weights_split_about_evenly_and_answer_with_their_model(
    rt: Any, two_variants: str, churn_model: ChurnModel, churn_model_small: ChurnModel
) -> None:
    X = churn_model.data.X[:1]
    row = csv_rows(X)[0]
    counts = _split(rt, two_variants, row, 400)
    # Binomial(400, 0.5): 6 standard deviations is ±60.
    assert set(counts) == {"A", "B"} and abs(counts["A"] - 200) <= 60
    for variant, model in (("A", churn_model), ("B", churn_model_small)):
        out = rt.invoke_endpoint(
            EndpointName=two_variants, ContentType="text/csv", Body=row, TargetVariant=variant
        )
        assert out["InvokedProductionVariant"] == variant
        assert abs(float(out["Body"].read()) - float(model.expected(X)[0])) <= 1e-6


def test_update_weights_and_capacities_live(
    server: ModelhostServer, two_variants: str, churn_model: ChurnModel
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name = two_variants
    row = csv_rows(churn_model.data.X[:1])[0]
    with Loop(rt, name, row) as loop:
        loop.wait_ok(3)
        sm.update_endpoint_weights_and_capacities(
            EndpointName=name,
            DesiredWeightsAndCapacities=[
                {"VariantName": "A", "DesiredWeight": 0},
                {"VariantName": "B", "DesiredWeight": 3, "DesiredInstanceCount": 2},
            ],
        )
        desc = sm.describe_endpoint(EndpointName=name)
        assert desc["EndpointStatus"] == "Updating"
        b = next(v for v in desc["ProductionVariants"] if v["VariantName"] == "B")
        assert (b["DesiredWeight"], b["DesiredInstanceCount"]) == (3.0, 2)
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
        loop.wait_ok(3)  # answered after InService
    assert loop.errors == [] and loop.ok > 5
    desc = sm.describe_endpoint(EndpointName=name)
    variants = {v["VariantName"]: v for v in desc["ProductionVariants"]}
    assert variants["A"]["CurrentWeight"] == 0.0
    assert (variants["B"]["CurrentWeight"], variants["B"]["CurrentInstanceCount"]) == (3.0, 2)
    assert "FailureReason" not in desc
    assert set(_split(rt, name, row, 50)) == {"B"}
    # TargetVariant still reaches a zero-weight variant.
    out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row, TargetVariant="A")
    assert out["InvokedProductionVariant"] == "A"
    # Scale back in: the extra instance drains and stops.
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "B", "DesiredInstanceCount": 1}],
    )
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    deadline = time.monotonic() + 20
    while len(instance_pids(server.home, name)) != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(instance_pids(server.home, name)) == 2


def test_bad_weight_updates_are_validation_exceptions(sm: Any, two_variants: str) -> None:
    for changes, text in (
        ([{"VariantName": "C", "DesiredWeight": 1}], "not present"),
        (
            [{"VariantName": "A", "DesiredWeight": 0}, {"VariantName": "B", "DesiredWeight": 0}],
            "greater than 0",
        ),
        ([{"VariantName": "A"}], "DesiredWeight, DesiredInstanceCount"),
    ):
        with pytest.raises(ClientError) as exc:
            sm.update_endpoint_weights_and_capacities(
                EndpointName=two_variants, DesiredWeightsAndCapacities=changes
            )
        assert exc.value.response["Error"]["Code"] == "ValidationException"
        assert text in exc.value.response["Error"]["Message"]
