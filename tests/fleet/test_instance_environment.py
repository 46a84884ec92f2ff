"""What an instance's environment is made of (pure parts; the real process is in
tests/gateway/test_instance_environment_e2e.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelhost.fleet.environment import inherited_environment
from modelhost.fleet.launch import model_environment
from modelhost.fleet.multimodel import artifact_store_env
from modelhost.settings import Settings


def test_only_the_allow_list_is_inherited() -> None:
    kept = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/tmp/x",
        "PYTHONPATH": "/src",
        "VIRTUAL_ENV": "/venv",
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "PIP_NO_INDEX": "1",
    }
    dropped = {
        "AWS_SECRET_ACCESS_KEY": "poison",
        "AWS_ACCESS_KEY_ID": "poison",
        "MODELHOST_SECRET_ACCESS_KEY": "poison",
        "MODELHOST_DATABASE_URL": "postgresql://u:pw@db/x",
        "SECRET_X": "1",
        "GITHUB_TOKEN": "t",
    }
    assert inherited_environment({**kept, **dropped}) == kept


def test_legacy_instance_names_in_a_model_environment_are_renamed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="modelhost.fleet"):
        env = model_environment(
            {"MODELHOST_BATCHING": "off", "MODELHOST_MODEL_CACHE_BYTES": 64, "OTHER": "x"}, "m"
        )
    assert env == {
        "MH_INSTANCE_BATCHING": "off",
        "MH_INSTANCE_MODEL_CACHE_BYTES": "64",
        "OTHER": "x",
    }
    assert "MODELHOST_BATCHING is now MH_INSTANCE_BATCHING" in caplog.text
    # The new name wins when a model sets both.
    both = {"MODELHOST_RUNTIME": "sklearn", "MH_INSTANCE_RUNTIME": "xgboost"}
    assert model_environment(both, "m") == {"MH_INSTANCE_RUNTIME": "xgboost"}


def test_artifact_store_env_carries_credentials_only_when_configured(tmp_path: Path) -> None:
    plain = artifact_store_env(Settings(home=tmp_path))
    assert plain["AWS_DEFAULT_REGION"] == "us-east-1"
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MH_INSTANCE_S3_ENDPOINT_URL"} & set(
        plain
    )
    s3 = Settings(
        home=tmp_path,
        s3_endpoint_url="http://127.0.0.1:9000",
        s3_region="eu-west-1",
        s3_access_key_id="AKIDEXAMPLE",
        s3_secret_access_key="secret",
    )
    env = artifact_store_env(s3)
    assert {k: env[k] for k in env if not k.startswith("MH_INSTANCE_ARTIFACT")} == {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "MH_INSTANCE_S3_REGION": "eu-west-1",
        "MH_INSTANCE_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
