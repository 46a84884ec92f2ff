"""CreateModel rules for multi-container models: botocore's constraints and ours."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.control.containers import validate_model_containers
from modelhost.control.validation import validate_input
from modelhost.errors import ValidationError, ValidationException
from modelhost.fleet.dataplane.pipeline import containers_to_run
from modelhost.fleet.multicontainer import GroupLaunchSpec
from modelhost.resources.containers import (
    ExecutionMode,
    container_hostnames,
    execution_mode,
    is_multi_container,
)

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def container(host: str | None = None, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"Image": IMAGE, "ModelDataUrl": "s3://bucket/model.tar.gz", **extra}
    if host is not None:
        c["ContainerHostname"] = host
    return c


def create_model(**members: Any) -> None:
    """Both layers, in the order the control plane applies them."""
    params = {"ModelName": "m", **members}
    validate_input("CreateModel", params)
    validate_model_containers(params)


def error(**members: Any) -> str:
    with pytest.raises(ValidationException) as info:
        create_model(**members)
    return str(info.value)


def test_valid_pipelines_and_multi_container_models_pass() -> None:
    create_model(Containers=[container("a"), container("b")])
    create_model(Containers=[container(), container()], InferenceExecutionConfig={"Mode": "Serial"})
    create_model(
        Containers=[container(f"c{i}") for i in range(15)],
        InferenceExecutionConfig={"Mode": "Direct"},
    )
    create_model(PrimaryContainer=container())


def test_botocore_constraints_cover_count_pattern_and_mode() -> None:
    message = error(Containers=[container() for _ in range(16)])
    assert "'containers' failed to satisfy constraint" in message
    assert "length less than or equal to 15" in message
    message = error(Containers=[container("bad_host"), container("b")])
    assert "containers.1.member.containerHostname" in message
    assert "regular expression pattern" in message
    message = error(Containers=[container("a")], InferenceExecutionConfig={"Mode": "Parallel"})
    assert "inferenceExecutionConfig.mode" in message
    assert "[Serial, Direct]" in message


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        (
            {"PrimaryContainer": container(), "Containers": [container("a")]},
            "specify either PrimaryContainer or Containers, not both",
        ),
        (
            {"PrimaryContainer": container(), "InferenceExecutionConfig": {"Mode": "Direct"}},
            "InferenceExecutionConfig applies only to a model with Containers",
        ),
        (
            {"Containers": [container("a"), container()]},
            "ContainerHostname is set for some containers but not for Containers.2",
        ),
        (
            {"Containers": [container("pre"), container("Pre")]},
            "'Pre' of Containers.2 is already used by Containers.1",
        ),
        (
            {"Containers": [container("a"), container("b", Mode="MultiModel")]},
            "Containers.2 has Mode MultiModel",
        ),
    ],
)
def test_cross_field_rules_name_the_member(members: dict[str, Any], expected: str) -> None:
    assert expected in error(**members)


def test_mode_and_host_names() -> None:
    assert not is_multi_container({"Containers": [container()]})
    assert is_multi_container(
        {"Containers": [container()], "InferenceExecutionConfig": {"Mode": "Direct"}}
    )
    assert is_multi_container({"Containers": [container(), container()]})
    assert execution_mode({"Containers": []}) == ExecutionMode.SERIAL
    assert execution_mode({"InferenceExecutionConfig": {"Mode": "Direct"}}) == ExecutionMode.DIRECT
    assert container_hostnames([container(), container()]) == ("container-1", "container-2")
    assert container_hostnames([container("x"), container("y")]) == ("x", "y")


def _spec(mode: ExecutionMode) -> GroupLaunchSpec:
    from pathlib import Path

    from modelhost.fleet.instance import LaunchSpec

    member = LaunchSpec("e", "v", "m", ["true"], {}, Path("."), Path("."))
    return GroupLaunchSpec(
        "e", "v", "m", ["true"], {}, Path("."), Path("."), mode=mode,
        containers=(("pre", member), ("model", member)),
    )  # fmt: skip


def test_which_containers_an_invocation_runs() -> None:
    serial, direct = _spec(ExecutionMode.SERIAL), _spec(ExecutionMode.DIRECT)
    assert containers_to_run("e", serial, None) == ("pre", "model")
    assert containers_to_run("e", direct, b"model") == ("model",)
    for spec, target, text in (
        (direct, None, "specify TargetContainerHostname (one of pre, model)"),
        (direct, b"post", "TargetContainerHostname post was not found in endpoint e"),
        (direct, b"-x", "regular expression pattern"),
        (serial, b"pre", "not configured for direct invocation"),
    ):
        with pytest.raises(ValidationError) as info:
            containers_to_run("e", spec, target)
        assert text in str(info.value)
