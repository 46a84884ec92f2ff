"""The control-plane operations over a real store and a fake controller (no processes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelhost.control.service import ControlPlane
from modelhost.errors import ValidationException
from modelhost.settings import Settings
from modelhost.store.metadata import MetadataStore

ROLE = "arn:aws:iam::123456789012:role/modelhost"


class FakeBandits:
    def get(self, name: str) -> None:
        return None


class FakeController:
    """What the operations ask of the controller: wake it, abort, and read-only views."""

    def __init__(self) -> None:
        self.woken = 0
        self.aborted: list[str] = []
        self.bandits = FakeBandits()

    def wake(self) -> None:
        self.woken += 1

    def abort(self, name: str) -> None:
        self.aborted.append(name)

    def deployment(self, name: str) -> None:
        return None

    def alarm_state(self, name: str) -> None:
        return None


@pytest.fixture()
def plane(tmp_path: Path) -> Iterator[tuple[ControlPlane, FakeController]]:
    store = MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")
    controller = FakeController()
    settings = Settings(home=tmp_path / "home")
    yield ControlPlane(settings, store, controller), controller  # type: ignore[arg-type]
    store.close()


def _model(plane: ControlPlane, name: str, tmp_path: Path) -> dict[str, Any]:
    container = {"Image": "xgboost", "ModelDataUrl": str(tmp_path)}
    params = {"ModelName": name, "PrimaryContainer": container, "ExecutionRoleArn": ROLE}
    return plane.call("CreateModel", params)


def _config(plane: ControlPlane, name: str, model: str, **variant: Any) -> dict[str, Any]:
    v = {
        "VariantName": "AllTraffic",
        "ModelName": model,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
        **variant,
    }
    return plane.call(
        "CreateEndpointConfig", {"EndpointConfigName": name, "ProductionVariants": [v]}
    )


def test_every_operation_is_registered(plane: tuple[ControlPlane, FakeController]) -> None:
    expected = {
        "CreateModel", "DescribeModel", "DeleteModel", "ListModels",
        "CreateEndpointConfig", "DescribeEndpointConfig", "DeleteEndpointConfig",
        "ListEndpointConfigs", "CreateEndpoint", "DescribeEndpoint", "UpdateEndpoint",
        "UpdateEndpointWeightsAndCapacities", "DeleteEndpoint", "ListEndpoints",
    }  # fmt: skip
    assert set(plane[0].operations) == expected


def test_model_and_config_describe_list_delete(
    plane: tuple[ControlPlane, FakeController], tmp_path: Path
) -> None:
    cp, _ = plane
    arn = _model(cp, "m1", tmp_path)["ModelArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:model/m1"
    _model(cp, "m2", tmp_path)
    described = cp.call("DescribeModel", {"ModelName": "m1"})
    assert described["ModelName"] == "m1" and described["ModelArn"] == arn
    assert described["PrimaryContainer"]["Image"] == "xgboost"
    page = cp.call("ListModels", {"MaxResults": 1, "SortBy": "Name", "SortOrder": "Ascending"})
    assert [m["ModelName"] for m in page["Models"]] == ["m1"] and page["NextToken"]
    rest = cp.call("ListModels", {"SortBy": "Name", "SortOrder": "Ascending", **page})
    assert [m["ModelName"] for m in rest["Models"]] == ["m2"] and "NextToken" not in rest
    with pytest.raises(ValidationException, match='Cannot create already existing model "arn'):
        _model(cp, "m1", tmp_path)

    _config(cp, "c1", "m1")
    config = cp.call("DescribeEndpointConfig", {"EndpointConfigName": "c1"})
    assert config["EndpointConfigArn"].endswith(":endpoint-config/c1")
    listed = cp.call("ListEndpointConfigs", {})["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in listed] == ["c1"]
    assert cp.call("DeleteEndpointConfig", {"EndpointConfigName": "c1"}) == {}
    assert cp.call("DeleteModel", {"ModelName": "m2"}) == {}
    with pytest.raises(ValidationException, match=r'Could not find model "arn:.*:model/m2"'):
        cp.call("DescribeModel", {"ModelName": "m2"})


def test_config_rules(plane: tuple[ControlPlane, FakeController], tmp_path: Path) -> None:
    cp, _ = plane
    with pytest.raises(ValidationException, match="Could not find model"):
        _config(cp, "c", "missing")
    _model(cp, "m", tmp_path)
    with pytest.raises(ValidationException, match="either ServerlessConfig or InstanceType"):
        _config(cp, "c", "m", ServerlessConfig={"MemorySizeInMB": 1024, "MaxConcurrency": 1})
    with pytest.raises(ValidationException, match="sum of InitialVariantWeight"):
        _config(cp, "c", "m", InitialVariantWeight=0)


def test_endpoint_lifecycle_through_the_controller(
    plane: tuple[ControlPlane, FakeController], tmp_path: Path
) -> None:
    cp, controller = plane
    _model(cp, "m", tmp_path)
    _config(cp, "c", "m")
    arn = cp.call("CreateEndpoint", {"EndpointName": "e", "EndpointConfigName": "c"})
    assert arn["EndpointArn"].endswith(":endpoint/e") and controller.woken == 1
    described = cp.call("DescribeEndpoint", {"EndpointName": "e"})
    assert described["EndpointStatus"] == "Creating" and "ProductionVariants" not in described
    # The endpoint keeps its snapshot when its config and model go away.
    cp.call("DeleteEndpointConfig", {"EndpointConfigName": "c"})
    cp.call("DeleteModel", {"ModelName": "m"})
    assert cp.call("DescribeEndpoint", {"EndpointName": "e"})["EndpointConfigName"] == "c"
    listed = cp.call("ListEndpoints", {"StatusEquals": "Creating"})["Endpoints"]
    assert [(e["EndpointName"], e["EndpointStatus"]) for e in listed] == [("e", "Creating")]
    assert cp.call("ListEndpoints", {"StatusEquals": "InService"})["Endpoints"] == []
    weights = {
        "EndpointName": "e",
        "DesiredWeightsAndCapacities": [{"VariantName": "AllTraffic", "DesiredWeight": 2.0}],
    }
    with pytest.raises(ValidationException, match=r'Cannot update endpoint ".*" while it is Creat'):
        cp.call("UpdateEndpointWeightsAndCapacities", weights)
    assert cp.call("DeleteEndpoint", {"EndpointName": "e"}) == {}
    assert controller.aborted == ["e"]
    assert cp.call("DescribeEndpoint", {"EndpointName": "e"})["EndpointStatus"] == "Deleting"
