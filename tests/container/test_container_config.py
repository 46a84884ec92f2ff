"""Parsing the instance environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.container.config import ConfigError, InstanceConfig


def test_defaults() -> None:
    config = InstanceConfig.from_env({})
    assert config == InstanceConfig()
    assert config.port == 8080 and config.host == "127.0.0.1"
    assert config.model_dir == Path("/opt/ml/model")
    assert config.runtime == "auto" and config.program is None and config.nthread == 1


def test_everything_set() -> None:
    config = InstanceConfig.from_env(
        {
            "SAGEMAKER_BIND_TO_PORT": "9001",
            "MH_INSTANCE_HOST": "0.0.0.0",
            "SM_MODEL_DIR": "/m",
            "MH_INSTANCE_RUNTIME": "XGBoost",
            "SAGEMAKER_PROGRAM": "serve.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "/m/src",
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json",
            "SAGEMAKER_BATCH": "true",
            "OMP_NUM_THREADS": "3",
            "MH_INSTANCE_PARENT_PID": "123",
            "MH_INSTANCE_LOG_LEVEL": "DEBUG",
            "MH_INSTANCE_ONNX_OUTPUT": "probabilities",
            "MH_INSTANCE_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        }
    )
    assert config.port == 9001 and config.host == "0.0.0.0"
    assert config.runtime == "xgboost" and config.program == "serve"
    assert config.submit_dir == Path("/m/src")
    assert config.default_accept == "application/json" and config.batch
    assert config.nthread == 3 and config.parent_pid == 123 and config.log_level == "debug"
    assert config.onnx_output == "probabilities"
    assert config.s3_endpoint_url == "http://127.0.0.1:9000"


def test_the_gateways_prefix_means_nothing_here() -> None:
    # MODELHOST_* is the gateway's settings; the instance reads only its own MH_INSTANCE_*.
    gateway_names = {
        "MODELHOST_RUNTIME": "xgboost",
        "MODELHOST_BATCHING": "off",
        "MODELHOST_LOG_LEVEL": "debug",
        "MODELHOST_MODEL_CACHE_BYTES": "5",
        "MODELHOST_ONNX_OUTPUT": "x",
    }
    assert InstanceConfig.from_env(gateway_names) == InstanceConfig()


def test_allowed_prefixes_as_json_or_commas() -> None:
    as_json = InstanceConfig.from_env({"MH_INSTANCE_ALLOWED_DATA_PREFIXES": '["s3://b/", "/m/"]'})
    commas = InstanceConfig.from_env({"MH_INSTANCE_ALLOWED_DATA_PREFIXES": "s3://b/, /m/"})
    assert as_json.allowed_data_prefixes == commas.allowed_data_prefixes == ("s3://b/", "/m/")


def test_s3_submit_directory_is_ignored() -> None:
    config = InstanceConfig.from_env({"SAGEMAKER_SUBMIT_DIRECTORY": "s3://b/sourcedir.tar.gz"})
    assert config.submit_dir is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SAGEMAKER_BIND_TO_PORT", "http"),
        ("SAGEMAKER_BIND_TO_PORT", "70000"),
        ("OMP_NUM_THREADS", "0"),
        ("MH_INSTANCE_ALLOWED_DATA_PREFIXES", "[not json"),
        ("MH_INSTANCE_ALLOWED_DATA_PREFIXES", '{"a": 1}'),
        ("MH_INSTANCE_ARTIFACT_MAX_RATIO", "0.5"),
        ("MH_INSTANCE_ARTIFACT_MAX_MEMBERS", "0"),
        ("MH_INSTANCE_HTTP_SERVER", "nginx"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        InstanceConfig.from_env({name: value})
    assert name in str(info.value)


def test_the_http_server_is_the_instances_own_unless_told_uvicorn() -> None:
    assert InstanceConfig.from_env({}).http_server == "modelhost"
    assert (
        InstanceConfig.from_env({"MH_INSTANCE_HTTP_SERVER": " Uvicorn "}).http_server == "uvicorn"
    )
