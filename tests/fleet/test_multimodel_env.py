"""What a multi-model instance is started with: the artifact store's configuration, which
its own config reads back (the gateway's settings, and a model cannot widen them)."""

from __future__ import annotations

from pathlib import Path

from modelhost.container.config import InstanceConfig
from modelhost.fleet.multimodel import multi_model_env
from modelhost.settings import Settings


def test_the_instance_reads_the_artifact_settings_back(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home",
        s3_endpoint_url="http://127.0.0.1:9000",
        region="eu-west-1",
        allowed_data_prefixes=["s3://models/", "file:///srv/models/"],
        artifact_max_unpacked_bytes=1234567,
        artifact_max_ratio=50.5,
        artifact_max_members=77,
        model_cache_bytes=10**9,
    )
    # A model's Environment may set its budget, never its allowed prefixes or limits.
    user = {"MH_INSTANCE_MODEL_CACHE_BYTES": "5000", "MH_INSTANCE_ALLOWED_DATA_PREFIXES": '["/"]'}
    env = {**user, **multi_model_env(settings, "ml.m5.large", user)}
    config = InstanceConfig.from_env(env)
    assert config.multi_model and config.model_cache_bytes == 5000
    assert config.artifact_cache_dir == settings.artifact_cache_dir
    assert config.s3_endpoint_url == "http://127.0.0.1:9000"
    assert config.s3_region == "eu-west-1"
    assert config.allowed_data_prefixes == ("s3://models/", "file:///srv/models/")
    assert (
        config.artifact_max_unpacked_bytes,
        config.artifact_max_ratio,
        config.artifact_max_members,
    ) == (1234567, 50.5, 77)


def test_defaults_leave_the_endpoint_and_prefixes_unset(tmp_path: Path) -> None:
    env = multi_model_env(Settings(home=tmp_path), None, {})
    assert "MH_INSTANCE_S3_ENDPOINT_URL" not in env
    assert "MH_INSTANCE_ALLOWED_DATA_PREFIXES" not in env
    config = InstanceConfig.from_env(env)
    assert config.allowed_data_prefixes == () and config.s3_endpoint_url is None
    assert config.artifact_cache_dir == tmp_path / "artifacts"
