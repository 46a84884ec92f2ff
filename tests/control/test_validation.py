"""validate_input against real SageMaker inputs, in SageMaker's own message format."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from typing import Any

import pytest

from modelhost.control import validation
from modelhost.control.validation import (
    MAX_REPORTED,
    input_members,
    parse_timestamp,
    python_pattern,
    untranslatable_patterns,
    validate_input,
    violation,
)
from modelhost.errors import UnknownOperation, ValidationException

NAME_PATTERN = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
STATUSES = (
    "OutOfService, Creating, Updating, SystemUpdating, RollingBack, InService, Deleting, "
    "Failed, UpdateRollbackFailed"
)
HOSTING_OPS = [
    "CreateModel",
    "DescribeModel",
    "DeleteModel",
    "ListModels",
    "CreateEndpointConfig",
    "DescribeEndpointConfig",
    "DeleteEndpointConfig",
    "ListEndpointConfigs",
    "CreateEndpoint",
    "DescribeEndpoint",
    "DeleteEndpoint",
    "ListEndpoints",
    "UpdateEndpoint",
    "UpdateEndpointWeightsAndCapacities",
]


def error_of(operation: str, params: dict[str, Any]) -> str:
    with pytest.raises(ValidationException) as info:
        validate_input(operation, params)
    assert info.value.code == "ValidationException"
    return info.value.message


def variant(name: str = "AllTraffic", **extra: Any) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": "xgb-model",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": 1.0,
        **extra,
    }


def model(**container: Any) -> dict[str, Any]:
    return {
        "ModelName": "xgb-model",
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "PrimaryContainer": {
            "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1.7-1",
            "ModelDataUrl": "s3://bucket/models/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "LOG_LEVEL": "info"},
            "Mode": "SingleModel",
            **container,
        },
        "Tags": [{"Key": "team", "Value": "ml platform"}],
    }


# --- valid inputs pass ------------------------------------------------------------------


def test_valid_create_model() -> None:
    validate_input("CreateModel", model())


def test_valid_create_endpoint_config_with_two_variants() -> None:
    validate_input(
        "CreateEndpointConfig",
        {
            "EndpointConfigName": "xgb-config-v2",
            "ProductionVariants": [
                variant("blue", InitialVariantWeight=0.0),
                variant("green", InitialInstanceCount=2, InstanceType="ml.c5.xlarge"),
            ],
            "DataCaptureConfig": {
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": "s3://bucket/capture",
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
        },
    )


def test_valid_create_endpoint_and_updates() -> None:
    validate_input(
        "CreateEndpoint",
        {
            "EndpointName": "xgb-endpoint",
            "EndpointConfigName": "xgb-config-v2",
            "Tags": [{"Key": "owner", "Value": "søren@example.com"}],
        },
    )
    validate_input(
        "UpdateEndpointWeightsAndCapacities",
        {
            "EndpointName": "xgb-endpoint",
            "DesiredWeightsAndCapacities": [{"VariantName": "blue", "DesiredWeight": 0}],
        },
    )


def test_valid_list_endpoints_with_every_filter() -> None:
    validate_input(
        "ListEndpoints",
        {
            "SortBy": "Status",
            "SortOrder": "Ascending",
            "MaxResults": 100,
            "NameContains": "xgb-",
            "CreationTimeAfter": 1704164645,
            "CreationTimeBefore": "2024-06-01T00:00:00Z",
            "LastModifiedTimeAfter": 1704164645.5,
            "StatusEquals": "InService",
            "NextToken": "abc",
        },
    )
    validate_input("ListEndpoints", {})


def test_unknown_members_and_null_optionals_are_ignored() -> None:
    validate_input("CreateEndpoint", {"EndpointName": "e", "EndpointConfigName": "c", "Future": 1})
    validate_input("CreateEndpoint", {"EndpointName": "e", "EndpointConfigName": "c", "Tags": None})


# --- names ------------------------------------------------------------------------------


def test_underscore_name_message_is_exactly_sagemakers() -> None:
    message = error_of("CreateEndpoint", {"EndpointName": "my_endpoint", "EndpointConfigName": "c"})
    assert message == (
        "1 validation error detected: Value 'my_endpoint' at 'endpointName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {NAME_PATTERN}"
    )


@pytest.mark.parametrize("name", ["my.endpoint", "-endpoint", "endpoint-", "a b", "é"])
def test_bad_names_are_refused(name: str) -> None:
    message = error_of("CreateEndpoint", {"EndpointName": name, "EndpointConfigName": "c"})
    assert message.startswith(f"1 validation error detected: Value '{name}' at 'endpointName'")


def test_64_character_name_breaks_pattern_and_length() -> None:
    name = "a" * 64
    message = error_of("DescribeEndpoint", {"EndpointName": name})
    assert message == (
        f"2 validation errors detected: Value '{name}' at 'endpointName' failed to satisfy "
        "constraint: Member must have length less than or equal to 63; "
        f"Value '{name}' at 'endpointName' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {NAME_PATTERN}"
    )
    validate_input("DescribeEndpoint", {"EndpointName": "a" * 63})


def test_model_name_pattern_allows_inner_hyphens_only() -> None:
    validate_input("DescribeModel", {"ModelName": "a--b"})
    message = error_of("DescribeModel", {"ModelName": "a_b"})
    assert "at 'modelName'" in message
    assert "^[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?" in message


def test_variant_name_in_list_item() -> None:
    message = error_of(
        "CreateEndpointConfig",
        {"EndpointConfigName": "c", "ProductionVariants": [variant(), variant("bad_name")]},
    )
    assert "Value 'bad_name' at 'productionVariants.2.member.variantName'" in message


# --- required, types --------------------------------------------------------------------


def test_missing_required_members() -> None:
    assert error_of("CreateEndpoint", {}) == (
        "2 validation errors detected: Value null at 'endpointName' failed to satisfy "
        "constraint: Member must not be null; Value null at 'endpointConfigName' failed to "
        "satisfy constraint: Member must not be null"
    )
    message = error_of(
        "CreateEndpointConfig",
        {"EndpointConfigName": "c", "ProductionVariants": [{"ModelName": "m"}, None]},
    )
    assert message == (
        "2 validation errors detected: Value null at 'productionVariants.1.member.variantName' "
        "failed to satisfy constraint: Member must not be null; Value null at "
        "'productionVariants.2.member' failed to satisfy constraint: Member must not be null"
    )


def test_explicit_null_required_member_is_missing() -> None:
    message = error_of("DeleteEndpoint", {"EndpointName": None})
    assert message.endswith(
        "Value null at 'endpointName' failed to satisfy constraint: Member must not be null"
    )


@pytest.mark.parametrize(
    ("params", "path", "shown", "constraint"),
    [
        ({"EndpointName": 5}, "endpointName", "5", "Member must be a string"),
        ({"InitialInstanceCount": "1"}, "initialInstanceCount", "1", "Member must be an integer"),
        ({"InitialInstanceCount": True}, "initialInstanceCount", "true", "an integer"),
        ({"InitialInstanceCount": 1.5}, "initialInstanceCount", "1.5", "an integer"),
        ({"InitialVariantWeight": "x"}, "initialVariantWeight", "x", "a finite number"),
        ({"InitialVariantWeight": False}, "initialVariantWeight", "false", "a finite number"),
        ({"InitialVariantWeight": float("nan")}, "initialVariantWeight", "nan", "finite number"),
        ({"EnableSSMAccess": "yes"}, "enableSSMAccess", "yes", "Member must be a boolean"),
        ({"ServerlessConfig": [1]}, "serverlessConfig", "[1]", "Member must be a structure"),
    ],
)
def test_wrong_types_in_a_variant(
    params: dict[str, Any], path: str, shown: str, constraint: str
) -> None:
    item = {"VariantName": "v", **params}
    if "EndpointName" in params:
        message = error_of("DescribeEndpoint", params)
        full = path
    else:
        message = error_of(
            "CreateEndpointConfig", {"EndpointConfigName": "c", "ProductionVariants": [item]}
        )
        full = f"productionVariants.1.member.{path}"
    assert message.startswith(f"1 validation error detected: Value '{shown}' at '{full}'")
    assert constraint in message


def test_wrong_container_types() -> None:
    message = error_of(
        "CreateEndpointConfig", {"EndpointConfigName": "c", "ProductionVariants": {}}
    )
    assert "at 'productionVariants' failed to satisfy constraint: Member must be a list" in message
    message = error_of("CreateModel", model(Environment=["A=1"]))
    assert (
        "at 'primaryContainer.environment' failed to satisfy constraint: Member must be a map"
        in message
    )


def test_bad_timestamp() -> None:
    message = error_of("ListEndpoints", {"CreationTimeAfter": "yesterday"})
    assert message == (
        "1 validation error detected: Value 'yesterday' at 'creationTimeAfter' failed to "
        "satisfy constraint: Member must be a timestamp (epoch seconds or ISO-8601)"
    )


def test_body_must_be_an_object() -> None:
    with pytest.raises(ValidationException):
        validate_input("ListEndpoints", [])  # type: ignore[arg-type]


# --- ranges, enums, lengths -------------------------------------------------------------


def test_negative_instance_count_and_weight() -> None:
    message = error_of(
        "CreateEndpointConfig",
        {
            "EndpointConfigName": "c",
            "ProductionVariants": [variant(InitialInstanceCount=-1, InitialVariantWeight=-0.5)],
        },
    )
    assert message == (
        "2 validation errors detected: Value '-1' at "
        "'productionVariants.1.member.initialInstanceCount' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1; Value '-0.5' at "
        "'productionVariants.1.member.initialVariantWeight' failed to satisfy constraint: "
        "Member must have value greater than or equal to 0"
    )


def test_desired_weight_below_zero() -> None:
    message = error_of(
        "UpdateEndpointWeightsAndCapacities",
        {
            "EndpointName": "e",
            "DesiredWeightsAndCapacities": [{"VariantName": "v", "DesiredWeight": -1.0}],
        },
    )
    assert "Value '-1.0' at 'desiredWeightsAndCapacities.1.member.desiredWeight'" in message


def test_bad_instance_type_prints_the_whole_enum() -> None:
    message = error_of(
        "CreateEndpointConfig",
        {"EndpointConfigName": "c", "ProductionVariants": [variant(InstanceType="bogus")]},
    )
    prefix = (
        "1 validation error detected: Value 'bogus' at 'productionVariants.1.member.instanceType' "
        "failed to satisfy constraint: Member must satisfy enum value set: [ml.t2.medium, "
    )
    assert message.startswith(prefix)
    assert ", ml.m5.large, " in message and message.endswith("]")


def test_status_equals_enum() -> None:
    assert error_of("ListEndpoints", {"StatusEquals": "Bogus"}) == (
        "1 validation error detected: Value 'Bogus' at 'statusEquals' failed to satisfy "
        f"constraint: Member must satisfy enum value set: [{STATUSES}]"
    )


def test_environment_over_100_entries_is_truncated_in_the_message() -> None:
    env = {f"VAR_{i}": "x" for i in range(101)}
    message = error_of("CreateModel", model(Environment=env))
    assert message.startswith("1 validation error detected: Value '{VAR_0=x, VAR_1=x, ")
    assert message.endswith(
        "...' at 'primaryContainer.environment' failed to satisfy constraint: "
        "Member must have length less than or equal to 100"
    )
    validate_input("CreateModel", model(Environment=dict(list(env.items())[:100])))


def test_environment_value_and_key_rules() -> None:
    message = error_of("CreateModel", model(Environment={"BIG": "v" * 1025}))
    assert "at 'primaryContainer.environment.BIG' failed to satisfy constraint: " in message
    assert message.endswith("Member must have length less than or equal to 1024")
    message = error_of("CreateModel", model(Environment={"1BAD": "v"}))
    assert message == (
        "1 validation error detected: Value '1BAD' at 'primaryContainer.environment' failed to "
        "satisfy constraint: Map key must satisfy constraint: Member must satisfy regular "
        "expression pattern: ^[a-zA-Z_][a-zA-Z0-9_]*"
    )


def test_tags() -> None:
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    message = error_of(
        "CreateEndpoint", {"EndpointName": "e", "EndpointConfigName": "c", "Tags": tags}
    )
    assert message.endswith(
        "at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50"
    )
    base = {"EndpointName": "e", "EndpointConfigName": "c"}
    validate_input("CreateEndpoint", {**base, "Tags": tags[:50]})
    validate_input("CreateEndpoint", {**base, "Tags": [{"Key": "Ünïcode ключ 1", "Value": ""}]})
    message = error_of("CreateEndpoint", {**base, "Tags": [{"Key": "a*b", "Value": "v"}]})
    assert "Value 'a*b' at 'tags.1.member.key'" in message
    message = error_of("CreateEndpoint", {**base, "Tags": [{"Key": "", "Value": "v"}]})
    assert "Member must have length greater than or equal to 1" in message


@pytest.mark.parametrize(
    ("value", "constraint"),
    [
        (0, "Member must have value greater than or equal to 1"),
        (101, "Member must have value less than or equal to 100"),
    ],
)
def test_max_results_range(value: int, constraint: str) -> None:
    for op in ("ListModels", "ListEndpointConfigs", "ListEndpoints"):
        assert error_of(op, {"MaxResults": value}) == (
            f"1 validation error detected: Value '{value}' at 'maxResults' failed to satisfy "
            f"constraint: {constraint}"
        )


def test_name_contains_with_underscore() -> None:
    assert error_of("ListModels", {"NameContains": "my_model"}) == (
        "1 validation error detected: Value 'my_model' at 'nameContains' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9-]+"
    )
    for op in ("ListEndpoints", "ListEndpointConfigs"):
        assert "Value 'a_b' at 'nameContains'" in error_of(op, {"NameContains": "a_b"})
    validate_input("ListEndpoints", {"NameContains": "a-b"})


def test_violations_are_capped() -> None:
    variants = [variant(f"bad_{i}") for i in range(10)] + [variant("x", InitialInstanceCount=0)]
    message = error_of(
        "CreateEndpointConfig", {"EndpointConfigName": "c_", "ProductionVariants": variants}
    )
    assert message.startswith("13 validation errors detected: Value 'c_' at 'endpointConfigName'")
    assert message.count("; Value ") == MAX_REPORTED - 1
    assert message.endswith("; (3 more not shown)")


def test_violation_helper_format() -> None:
    err = violation(7, "maxResults", "Member must be odd")
    assert err.message == (
        "1 validation error detected: Value '7' at 'maxResults' failed to satisfy constraint: "
        "Member must be odd"
    )


def test_unknown_operation_and_input_members() -> None:
    with pytest.raises(UnknownOperation):
        validate_input("CreateBogus", {})
    assert input_members("DeleteEndpoint") == {"EndpointName"}
    assert {"StatusEquals", "NextToken", "MaxResults"} <= input_members("ListEndpoints")


# --- patterns -------------------------------------------------------------------------


def test_every_pattern_of_the_hosting_operations_compiles() -> None:
    assert untranslatable_patterns(HOSTING_OPS) == []


def test_whole_model_patterns_compile() -> None:
    # Not required by the service, but tells us when a botocore upgrade brings a Java
    # construct the translator does not handle (those patterns would be skipped).
    assert untranslatable_patterns() == []


@pytest.mark.parametrize(
    ("java", "good", "bad"),
    [
        (r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*", ["héllo wörld_١٢٣", "日本 語", ""], ["a*b", "a\tb"]),
        (r"([\p{L}\p{Z}\p{N}_.:\/=+\-@]*)${1,128}", ["key: 1"], ["a#"]),
        (r"\A\S[\p{Print}]*\z", ["model/a.tar.gz", "x"], [" x", "a\n", "aé"]),
        (r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*", ["a😀\t"], ["\x01"]),
        (r"arn:[\p{Alnum}\-]+:lambda:.*", ["arn:aws:lambda:x"], ["arn:aws_:lambda:x"]),
        (r"\w+", ["abc_1"], ["é"]),  # Java's \w is ASCII
        (r".*", ["abc"], ["a\rb"]),  # Java's '.' excludes every line terminator
        (r"^(NEW_SESSION)$|^[a-zA-Z0-9](-*[a-zA-Z0-9])*$", ["NEW_SESSION", "a-b"], ["a_b"]),
    ],
)
def test_java_pattern_translation(java: str, good: list[str], bad: list[str]) -> None:
    compiled = python_pattern(java)
    assert compiled is not None
    for value in good:
        assert compiled.fullmatch(value), value
    for value in bad:
        assert compiled.fullmatch(value) is None, value


@pytest.mark.parametrize(
    "java", [r"[a-z&&[^b]]", r"\p{IsLatin}", r"[\P{L}]", r"\x{41}", "[abc", r"\R", "(", "\\"]
)
def test_untranslatable_patterns_are_skipped_not_fatal(java: str) -> None:
    assert python_pattern(java) is None


# --- timestamps and model loading ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1704164645, 1704164645.0),
        (1704164645.123, 1704164645.123),
        ("1704164645", 1704164645.0),
        ("2024-01-02T03:04:05Z", 1704164645.0),
        ("2024-01-02T04:04:05+01:00", 1704164645.0),
        ("2024-01-02T03:04:05.500", 1704164645.5),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), 1704164645.0),
    ],
)
def test_parse_timestamp(value: object, expected: float) -> None:
    assert parse_timestamp(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["garbage", "", True, None, float("inf"), "nan", [], 10**400])
def test_parse_timestamp_rejects_garbage(value: object) -> None:
    with pytest.raises(ValidationException, match="not a valid timestamp"):
        parse_timestamp(value)


def test_model_is_loaded_lazily_and_once() -> None:
    code = (
        "import modelhost.control.validation as v\n"
        "assert v._model.cache_info().currsize == 0\n"
        "v.validate_input('DeleteEndpoint', {'EndpointName': 'e'})\n"
        "v.validate_input('DeleteModel', {'ModelName': 'm'})\n"
        "assert v._model.cache_info().misses == 1, v._model.cache_info()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    validate_input("DeleteEndpoint", {"EndpointName": "e"})
    assert validation._model.cache_info().misses == 1
