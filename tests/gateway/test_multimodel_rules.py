"""Pure rules of multi-model endpoints: TargetModel validation, budgets, instance memory."""

from __future__ import annotations

import pytest

from modelhost.errors import ValidationError
from modelhost.fleet.dataplane.multimodel import artifact_url
from modelhost.fleet.multimodel import check_prefix, model_cache_budget_bytes
from modelhost.gateway.multimodel import validate_target_model
from modelhost.resources.instance_types import GIB, instance_memory_bytes


@pytest.mark.parametrize(
    "target", ["CA.tar.gz", "states/CA.tar.gz", "a b/c..d.tar.gz", "x" * 1024, "v2/..x"]
)
def test_relative_targets_are_accepted(target: str) -> None:
    assert validate_target_model(target) == target


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        ("", "greater than or equal to 1"),
        ("x" * 1025, "less than or equal to 1024"),
        ("../CA.tar.gz", "no '.' or '..'"),
        ("a/../../CA.tar.gz", "no '.' or '..'"),
        ("a/..", "no '.' or '..'"),
        ("./CA.tar.gz", "no '.' or '..'"),
        ("/etc/passwd", "relative"),
        ("s3://other-bucket/CA.tar.gz", "relative"),
        ("a\\..\\b", "relative"),
        ("states/", "no '.' or '..'"),
        ("CA\x00.tar.gz", "pattern"),
        (" CA.tar.gz", "pattern"),
    ],
)
def test_escaping_or_malformed_targets_are_refused(target: str, rule: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_target_model(target)
    assert "'targetModel'" in info.value.message and rule in info.value.message


def test_artifact_url_joins_with_one_slash() -> None:
    assert artifact_url("s3://b/models/", "CA.tar.gz") == "s3://b/models/CA.tar.gz"
    assert artifact_url("s3://b/models", "CA.tar.gz") == "s3://b/models/CA.tar.gz"
    assert artifact_url("/data/models", "x/CA.tar.gz") == "/data/models/x/CA.tar.gz"


def test_instance_memory() -> None:
    assert instance_memory_bytes("ml.m5.large") == 8 * GIB
    assert instance_memory_bytes("ml.c5.2xlarge") == 16 * GIB
    assert instance_memory_bytes("ml.r5.xlarge") == 32 * GIB
    assert instance_memory_bytes("ml.t2.medium") == 4 * GIB
    assert instance_memory_bytes("ml.g4dn.xlarge") == 16 * GIB
    assert instance_memory_bytes("ml.unknown") is None
    assert instance_memory_bytes(None) is None


def test_budget_from_setting_or_instance_type_capped_by_the_machine() -> None:
    assert model_cache_budget_bytes(123, "ml.m5.large", 64 * GIB) == 123
    assert model_cache_budget_bytes(0, "ml.m5.large", 64 * GIB) == 4 * GIB
    assert model_cache_budget_bytes(0, "ml.r5.12xlarge", 16 * GIB) == 8 * GIB
    assert model_cache_budget_bytes(0, "ml.unknown", 16 * GIB) == 8 * GIB


def test_check_prefix(tmp_path: object) -> None:
    assert check_prefix("s3://bucket/models/") is None
    assert check_prefix(str(tmp_path)) is None
    assert check_prefix(f"file://{tmp_path}") is None
    problem = check_prefix(f"{tmp_path}/missing")
    assert problem is not None and "not a directory" in problem


def test_create_model_rules_name_the_container() -> None:
    from modelhost.control.multimodel import check_multi_model
    from modelhost.errors import ValidationException

    check_multi_model({"PrimaryContainer": {"Mode": "MultiModel", "ModelDataUrl": "s3://b/p/"}})
    check_multi_model({"PrimaryContainer": {"ModelDataUrl": "s3://b/model.tar.gz"}})
    with pytest.raises(ValidationException, match=r"^PrimaryContainer: .*needs ModelDataUrl"):
        check_multi_model({"PrimaryContainer": {"Mode": "MultiModel"}})
    source = {"S3DataSource": {"S3Uri": "s3://b/p/"}}
    with pytest.raises(ValidationException, match=r"^Containers\.2: ModelDataSource cannot"):
        check_multi_model({"Containers": [{}, {"Mode": "MultiModel", "ModelDataSource": source}]})
