"""ServerlessConfig on CreateEndpointConfig: SageMaker's rules and messages (no processes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelhost.control.catalog import ENDPOINT
from modelhost.control.endpoints import variant_summaries
from modelhost.control.service import ControlPlane
from modelhost.errors import ValidationException
from modelhost.resources.status import EndpointStatus
from modelhost.settings import Settings
from modelhost.store.metadata import MetadataStore

ROLE = "arn:aws:iam::123456789012:role/modelhost"


class _Controller:
    """What these operations ask of the controller: a wake-up, and no running fleets."""

    def wake(self) -> None:
        pass

    def deployment(self, name: str) -> None:
        return None


@pytest.fixture()
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    store = MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")
    cp = ControlPlane(Settings(home=tmp_path / "home"), store, _Controller())  # type: ignore[arg-type]
    container = {"Image": "xgboost", "ModelDataUrl": str(tmp_path)}
    mme = {**container, "Mode": "MultiModel"}
    for name, spec in (("m", container), ("mme", mme)):
        params = {"ModelName": name, "PrimaryContainer": spec, "ExecutionRoleArn": ROLE}
        cp.call("CreateModel", params)
    yield cp
    store.close()


def _config(cp: ControlPlane, serverless: dict[str, Any], **more: Any) -> dict[str, Any]:
    variant = {"VariantName": "AllTraffic", "ModelName": "m", "ServerlessConfig": serverless}
    variant.update(more.pop("variant", {}))
    params = {"EndpointConfigName": "c", "ProductionVariants": [variant], **more}
    return cp.call("CreateEndpointConfig", params)


def test_a_valid_config_is_stored_and_echoed(plane: ControlPlane) -> None:
    config = {"MemorySizeInMB": 3072, "MaxConcurrency": 10, "ProvisionedConcurrency": 2}
    _config(plane, config)
    described = plane.call("DescribeEndpointConfig", {"EndpointConfigName": "c"})
    assert described["ProductionVariants"][0]["ServerlessConfig"] == config


@pytest.mark.parametrize(
    ("serverless", "variant", "message"),
    [
        (
            {"MemorySizeInMB": 1500, "MaxConcurrency": 1},
            {},
            "Value '1500' at 'productionVariants.1.member.serverlessConfig.memorySizeInMB' "
            "failed to satisfy constraint: Member must satisfy enum value set: "
            "[1024, 2048, 3072, 4096, 5120, 6144]",
        ),
        (
            {"MemorySizeInMB": 8192, "MaxConcurrency": 1},
            {},
            "Member must have value less than or equal to 6144",
        ),
        ({"MemorySizeInMB": 1024, "MaxConcurrency": 201}, {}, "less than or equal to 200"),
        (
            {"MemorySizeInMB": 1024, "MaxConcurrency": 2, "ProvisionedConcurrency": 3},
            {},
            "ProvisionedConcurrency (3) must be less than or equal to MaxConcurrency (2)",
        ),
        (
            {"MemorySizeInMB": 1024, "MaxConcurrency": 2},
            {"InstanceType": "ml.m5.large"},
            "either ServerlessConfig or InstanceType, not both",
        ),
        (
            {"MemorySizeInMB": 1024, "MaxConcurrency": 2},
            {"ModelName": "mme"},
            "serverless endpoints serve a single model",
        ),
    ],
)
def test_rules(
    plane: ControlPlane, serverless: dict[str, Any], variant: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationException) as caught:
        _config(plane, serverless, variant=variant)
    assert message in caught.value.message


def test_endpoint_level_rules(plane: ControlPlane) -> None:
    ok = {"MemorySizeInMB": 1024, "MaxConcurrency": 1}
    with pytest.raises(ValidationException, match="DataCaptureConfig is not supported"):
        capture = {
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://b/c",
            "CaptureOptions": [{"CaptureMode": "Input"}],
        }
        _config(plane, ok, DataCaptureConfig=capture)
    with pytest.raises(ValidationException, match="exactly one production variant"):
        other = {"VariantName": "B", "ModelName": "m", "ServerlessConfig": ok}
        params = {
            "EndpointConfigName": "c",
            "ProductionVariants": [
                {"VariantName": "A", "ModelName": "m", "ServerlessConfig": ok},
                other,
            ],
        }
        plane.call("CreateEndpointConfig", params)


def test_a_serverless_variant_has_no_instance_count_to_update(plane: ControlPlane) -> None:
    _config(plane, {"MemorySizeInMB": 1024, "MaxConcurrency": 1})
    plane.call("CreateEndpoint", {"EndpointName": "e", "EndpointConfigName": "c"})
    record = plane.catalog.get(ENDPOINT, "e")  # as the controller marks it when serving
    record.status = EndpointStatus.IN_SERVICE
    plane.catalog.store.save(record)
    with pytest.raises(ValidationException, match="is serverless: it has no instance count"):
        plane.call(
            "UpdateEndpointWeightsAndCapacities",
            {
                "EndpointName": "e",
                "DesiredWeightsAndCapacities": [
                    {"VariantName": "AllTraffic", "DesiredInstanceCount": 2}
                ],
            },
        )


def test_serverless_update_config_rules(plane: ControlPlane) -> None:
    _config(plane, {"MemorySizeInMB": 1024, "MaxConcurrency": 2})
    plane.call("CreateEndpoint", {"EndpointName": "e", "EndpointConfigName": "c"})
    record = plane.catalog.get(ENDPOINT, "e")
    record.status = EndpointStatus.IN_SERVICE
    plane.catalog.store.save(record)

    def update(config: dict[str, int]) -> None:
        item = {"VariantName": "AllTraffic", "ServerlessUpdateConfig": config}
        plane.call(
            "UpdateEndpointWeightsAndCapacities",
            {"EndpointName": "e", "DesiredWeightsAndCapacities": [item]},
        )

    with pytest.raises(ValidationException, match=r"ProvisionedConcurrency \(3\) must be"):
        update({"ProvisionedConcurrency": 3})  # over the current MaxConcurrency of 2
    update({"MaxConcurrency": 5, "ProvisionedConcurrency": 3})
    spec = plane.catalog.get(ENDPOINT, "e").spec
    assert spec["PendingWeights"]["AllTraffic"]["ServerlessUpdateConfig"] == {
        "MaxConcurrency": 5,
        "ProvisionedConcurrency": 3,
    }
    described = variant_summaries(spec, None)[0]  # DescribeEndpoint's, while it updates
    assert described["CurrentServerlessConfig"] == {"MemorySizeInMB": 1024, "MaxConcurrency": 2}
    assert described["DesiredServerlessConfig"] == {
        "MemorySizeInMB": 1024,
        "MaxConcurrency": 5,
        "ProvisionedConcurrency": 3,
    }
