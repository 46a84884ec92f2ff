"""Which launch specs a zygote may fork (pure: no process is started)."""

from __future__ import annotations

from pathlib import Path

from modelhost.fleet.instance import LaunchSpec
from modelhost.fleet.zygote import ZygoteProvider


def _spec(env: dict[str, str], **more: object) -> LaunchSpec:
    return LaunchSpec(
        endpoint_name="e",
        variant_name="v",
        model_name="m",
        argv=["python", "-m", "modelhost.container"],
        env={"MH_INSTANCE_RUNTIME": "xgboost", "OMP_NUM_THREADS": "1", **env},
        model_dir=Path("/m"),
        log_dir=Path("/l"),
        **more,  # type: ignore[arg-type]
    )


def test_built_in_single_model_instances_fork_by_runtime_and_threads() -> None:
    assert ZygoteProvider.key(_spec({})) == ("xgboost", "1")
    assert ZygoteProvider.key(_spec({"OMP_NUM_THREADS": "2"})) == ("xgboost", "2")
    assert ZygoteProvider.key(_spec({"PYTHONUNBUFFERED": "1", "SAGEMAKER_PROGRAM": "x"}))


def test_what_a_fork_cannot_honour_is_spawned() -> None:
    assert ZygoteProvider.key(_spec({}, builtin=False)) is None  # a user's server
    assert ZygoteProvider.key(_spec({}, model_data_prefix="s3://b/p/")) is None  # multi-model
    for name in ("PYTHONHASHSEED", "MKL_NUM_THREADS", "LD_PRELOAD", "MALLOC_ARENA_MAX"):
        assert ZygoteProvider.key(_spec({name: "1"})) is None, name
