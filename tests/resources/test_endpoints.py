"""Typed endpoint resources read the stored spec format and write it back unchanged."""

from __future__ import annotations

import copy
from typing import Any

from modelhost.resources.endpoints import Endpoint, EndpointUpdate, WeightChange
from modelhost.resources.status import EndpointStatus

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"

STORED: dict[str, Any] = {
    "EndpointConfigName": "cfg-1",
    "Config": {
        "ProductionVariants": [
            {
                "VariantName": "A",
                "ModelName": "m-a",
                "InitialInstanceCount": 2,
                "InitialVariantWeight": 0.5,
                "InstanceType": "ml.m5.large",
            },
            {
                "VariantName": "B",
                "ModelName": "m-b",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2},
            },
        ],
        "ShadowProductionVariants": [
            {"VariantName": "S", "ModelName": "m-s", "InitialVariantWeight": 0.2}
        ],
        "DataCaptureConfig": {"EnableCapture": True, "InitialSamplingPercentage": 10},
    },
    "Models": {
        "m-a": {"PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": "s3://b/a.tar.gz"}},
        "m-b": {"Containers": [{"Image": IMAGE}, {"Image": IMAGE}]},
        "m-s": {"PrimaryContainer": {"Image": IMAGE}},
    },
    "DeploymentConfig": {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "x", "Value": 1}}},
    "Pending": {
        "EndpointConfigName": "cfg-2",
        "Config": {"ProductionVariants": [{"VariantName": "A", "ModelName": "m-c"}]},
        "Models": {"m-c": {"PrimaryContainer": {"Image": IMAGE}}},
        "StartTime": 1700000000.5,
        "Stage": {"Status": "Baking", "StatusMessage": "baking for 5 s", "StartTime": 1700000001},
    },
    "Routing": {"RoutingConfig": {"Strategy": "EpsilonGreedy"}, "Stats": {"A": [1, 0.5]}},
    "Events": [{"Time": 1700000000.0, "Status": "InService", "Message": "now serving cfg-1"}],
    "SomethingNewer": {"kept": True},
}


def test_a_stored_spec_round_trips_unchanged() -> None:
    endpoint = Endpoint.from_spec("ep", copy.deepcopy(STORED), "Updating", None)
    assert endpoint.to_spec() == STORED
    assert endpoint.status == EndpointStatus.UPDATING
    assert endpoint.update == EndpointUpdate.CONFIG


def test_typed_view_of_variants_models_and_the_pending_update() -> None:
    endpoint = Endpoint.from_spec("ep", STORED, None, None)
    assert endpoint.status == EndpointStatus.CREATING  # no status yet: being created
    config = endpoint.current.config
    assert config.name == "cfg-1"
    assert config.production_names() == ["A", "B"]
    assert config.weights() == {"A": 0.5, "B": 1.0}  # SageMaker's default weight
    b = config.variant("B")
    # Serverless without ProvisionedConcurrency: no instance until a request comes.
    assert b is not None and b.instance_count == 0 and b.initial_instance_count is None
    assert b.serverless is not None and b.serverless.max_concurrency == 2
    assert b.serverless.memory_bytes == 2048 * 1024 * 1024
    assert config.variants[0].instance_type == "ml.m5.large"
    assert [v.name for v in config.shadow_variants] == ["S"] and config.shadow_variants[0].shadow
    assert endpoint.current.models["m-b"].multi_container
    assert not endpoint.current.models["m-a"].multi_container
    assert endpoint.current.rolling_policy is not None
    assert endpoint.current.blue_green_policy is None
    assert endpoint.pending is not None and endpoint.pending.config_name == "cfg-2"
    assert endpoint.pending.stage is not None and endpoint.pending.stage.status == "Baking"


def test_update_kinds() -> None:
    plain = {k: v for k, v in STORED.items() if k not in ("Pending",)}
    assert Endpoint.from_spec("ep", plain, "InService", None).update == EndpointUpdate.NONE
    weights = {**plain, "PendingWeights": {"A": {"DesiredWeight": 2, "DesiredInstanceCount": None}}}
    endpoint = Endpoint.from_spec("ep", weights, "Updating", None)
    assert endpoint.update == EndpointUpdate.WEIGHTS
    assert endpoint.pending_weights == {"A": WeightChange(2.0, None)}
    assert endpoint.to_spec() == weights


def test_changes_are_written_in_the_stored_format() -> None:
    endpoint = Endpoint.from_spec("ep", STORED, "Updating", None)
    endpoint.current.config.variants[1].initial_instance_count = 3
    endpoint.pending = None
    spec = endpoint.to_spec()
    assert "Pending" not in spec
    assert spec["Config"]["ProductionVariants"][1] == {
        "VariantName": "B",
        "ModelName": "m-b",
        "InitialInstanceCount": 3,
        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2},
    }
    assert STORED["Config"]["ProductionVariants"][1].get("InitialInstanceCount") is None
