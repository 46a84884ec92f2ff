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
        log_dir=Path("/l"),
        **{"model_dir": Path("/m"), **more},  # type: ignore[arg-type]
    )


def test_built_in_single_model_instances_fork_by_runtime_and_threads() -> None:
    assert ZygoteProvider.key(_spec({})) == ("xgboost", "1")
    assert ZygoteProvider.key(_spec({"OMP_NUM_THREADS": "2"})) == ("xgboost", "2")
    assert ZygoteProvider.key(_spec({"PYTHONUNBUFFERED": "1", "SAGEMAKER_PROGRAM": "x"}))


def test_multi_model_instances_fork_too() -> None:
    assert ZygoteProvider.key(_spec({}, model_data_prefix="s3://b/p/")) == ("xgboost", "1")


def test_what_a_fork_cannot_honour_is_spawned(tmp_path: Path) -> None:
    assert ZygoteProvider.key(_spec({}, builtin=False)) is None  # a user's server
    assert ZygoteProvider.key(_spec({}, forkable=False)) is None  # a multi-container member
    assert ZygoteProvider.key(_spec({"MH_INSTANCE_TYPE": "ml.g5.xlarge"})) is None  # CUDA
    assert ZygoteProvider.key(_spec({"MH_INSTANCE_TYPE": "ml.m5.xlarge"})) is not None
    # A script's own requirements must win over what the zygote imported.
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "requirements.txt").write_text("# nothing yet\n")
    assert ZygoteProvider.key(_spec({}, model_dir=tmp_path)) is not None
    (tmp_path / "code" / "requirements.txt").write_text("xgboost==1.7.6\n")
    assert ZygoteProvider.key(_spec({}, model_dir=tmp_path)) is None
    for name in ("PYTHONHASHSEED", "MKL_NUM_THREADS", "LD_PRELOAD", "MALLOC_ARENA_MAX"):
        assert ZygoteProvider.key(_spec({name: "1"})) is None, name
