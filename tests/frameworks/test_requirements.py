"""Script mode loading: `code/requirements.txt` installs, the load hooks, the code dir.

Nothing here reaches the network: the requirements name a wheel the test writes, and
`PIP_NO_INDEX=1` (inherited by pip) keeps pip off every index.
"""

from __future__ import annotations

import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from modelhost.container.config import InstanceConfig
from modelhost.errors import ModelLoadError
from modelhost.frameworks import requirements
from modelhost.frameworks.base import Context, RuntimeOptions
from modelhost.frameworks.registry import select_runtime
from modelhost.frameworks.script import ScriptRuntime
from tests.frameworks.fw_support import PKG, write_wheel

SCRIPT = f"""
import {PKG}

def model_fn(model_dir):
    return {PKG}.VALUE


def transform_fn(model, body, content_type, accept):
    return str(model), "text/plain"
"""


def model_with_requirements(root: Path, lines: str, script: str = SCRIPT) -> Path:
    """A model directory whose code/ holds the script, the wheel and requirements.txt."""
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    write_wheel(code)
    (code / "inference.py").write_text(textwrap.dedent(script))
    (code / "requirements.txt").write_text(lines)
    return root


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")


@pytest.fixture()
def pip_runs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every pip run, recorded (the real pip still runs)."""
    runs: list[Path] = []
    real = requirements._pip_install

    def counting(req: Path, target: Path, timeout_s: float) -> None:
        runs.append(target)
        real(req, target, timeout_s)

    monkeypatch.setattr(requirements, "_pip_install", counting)
    return runs


def _load(model_dir: Path, packages: Path, **options: Any) -> ScriptRuntime:
    runtime = select_runtime("auto", model_dir, RuntimeOptions(packages_dir=packages, **options))
    assert isinstance(runtime, ScriptRuntime)
    runtime.load(model_dir)
    return runtime


def _invoke(runtime: ScriptRuntime) -> bytes:
    return runtime.handle(b"1", "text/csv", None, Context(str(runtime.model_dir)))[0]


def test_requirements_install_then_the_script_imports_them(
    tmp_path: Path, pip_runs: list[Path]
) -> None:
    model_dir = model_with_requirements(
        tmp_path / "m", f"# local wheel\n./{PKG}-0.1-py3-none-any.whl\n"
    )
    packages = tmp_path / "packages"
    assert _invoke(_load(model_dir, packages)) == b"42"
    assert len(pip_runs) == 1
    installed = [p for p in packages.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(installed) == 1 and (installed[0] / PKG / "__init__.py").is_file()
    assert sys.path[0] == str(model_dir / "code")  # the code dir first, as the toolkit
    assert sys.path[1] == str(installed[0])
    assert not list(packages.glob(".tmp-*"))  # the temporary dir was renamed

    # A second load (a restart, another instance) reuses the directory: no pip.
    for name in list(sys.modules):
        if name.startswith(PKG):
            del sys.modules[name]
    assert _invoke(_load(model_dir, packages)) == b"42"
    assert len(pip_runs) == 1


def test_a_changed_wheel_is_a_new_install(tmp_path: Path) -> None:
    model_dir = model_with_requirements(tmp_path / "m", f"./{PKG}-0.1-py3-none-any.whl\n")
    req = model_dir / "code" / "requirements.txt"
    before = requirements.requirements_digest(req)
    write_wheel(model_dir / "code", value=7)  # same file name, same requirements text
    assert requirements.requirements_digest(req) != before


def test_bad_requirement_fails_the_load_with_pips_message(
    tmp_path: Path, pip_runs: list[Path]
) -> None:
    model_dir = model_with_requirements(tmp_path / "m", "nonexistent-package-xyz==1.0\n")
    packages = tmp_path / "packages"
    with pytest.raises(ModelLoadError) as info:
        _load(model_dir, packages)
    message = info.value.message
    assert message.startswith("code/requirements.txt failed to install (pip exited with 1)")
    assert "No matching distribution found for nonexistent-package-xyz==1.0" in message
    assert len(message) < 900  # fits a FailureReason
    assert len(pip_runs) == 1
    made = [p.name for p in packages.iterdir() if not p.name.startswith(".")]
    assert made == []  # nothing half-made


def test_concurrent_loads_install_once(tmp_path: Path, pip_runs: list[Path]) -> None:
    model_dir = model_with_requirements(tmp_path / "m", f"./{PKG}-0.1-py3-none-any.whl\n")
    req = model_dir / "code" / "requirements.txt"
    packages = tmp_path / "packages"
    results: list[Path | None] = []
    errors: list[BaseException] = []

    def install() -> None:
        try:
            results.append(requirements.install_requirements(req, packages, 120))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=install) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors
    assert len(pip_runs) == 1
    assert len(set(results)) == 1 and results[0] is not None and results[0].is_dir()


def test_pip_timeout_is_a_load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = model_with_requirements(tmp_path / "m", "anything\n")
    # A pip that hangs: the limit must end it and say which variable sets the limit.
    monkeypatch.setattr(
        requirements,
        "pip_argv",
        lambda req, target: [
            sys.executable,
            "-c",
            "print('resolving...'); import time; time.sleep(60)",
        ],
    )
    with pytest.raises(ModelLoadError) as info:
        _load(model_dir, tmp_path / "packages", pip_timeout_s=1.0)
    assert "did not install within 1 s (MH_INSTANCE_PIP_TIMEOUT_S)" in info.value.message
    assert "resolving..." in info.value.message


def test_comments_only_needs_no_pip(tmp_path: Path, pip_runs: list[Path]) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text("# nothing yet\n\n")
    assert requirements.install_requirements(code / "requirements.txt", tmp_path / "p") is None
    assert pip_runs == []


def test_pip_argv_is_a_list_without_a_shell(tmp_path: Path) -> None:
    argv = requirements.pip_argv(tmp_path / "requirements.txt", tmp_path / "t")
    assert argv[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--target" in argv and "--no-input" in argv and "--disable-pip-version-check" in argv


def test_packages_dir_and_timeout_from_the_environment(tmp_path: Path) -> None:
    config = InstanceConfig.from_env(
        {"MH_INSTANCE_PACKAGES_DIR": str(tmp_path), "MH_INSTANCE_PIP_TIMEOUT_S": "30"}
    )
    assert config.packages_dir == tmp_path and config.pip_timeout_s == 30.0
    assert InstanceConfig.from_env({}).packages_dir is None  # ~/.modelhost/packages


# --- the other load-time parts of script mode --------------------------------------------


def test_pre_model_and_warmup_hooks_run_around_model_fn(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(
        textwrap.dedent(
            """
            calls = []

            def pre_model_fn(model_dir):
                calls.append(("pre", model_dir))

            def model_fn(model_dir, context):
                calls.append(("model", context.system_properties["model_dir"]))
                return {"warm": False}

            def model_warmup_fn(model_dir, model):
                model["warm"] = True
                calls.append(("warmup", model_dir))

            def transform_fn(model, body, content_type, accept):
                return repr((model, calls))
            """
        )
    )
    runtime = _load(tmp_path, tmp_path / "packages")
    d = str(tmp_path)
    expected = ({"warm": True}, [("pre", d), ("model", d), ("warmup", d)])
    assert _invoke(runtime) == repr(expected).encode()


def test_a_failing_hook_is_a_load_error_naming_it(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(
        "def model_fn(model_dir):\n    return 1\n\n\n"
        "def model_warmup_fn(model_dir, model):\n    raise RuntimeError('cold')\n"
    )
    with pytest.raises(ModelLoadError) as info:
        _load(tmp_path, tmp_path / "packages")
    assert info.value.message == (
        "model_warmup_fn in code/inference.py failed: RuntimeError: cold (line 6)"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/opt/ml/model/code", "/srv/m/code"),  # what the SDK sets when it repacks
        ("/opt/ml/model", "/srv/m"),
        ("src", "/srv/m/src"),
        ("/elsewhere/code", "/elsewhere/code"),
        ("s3://bucket/sourcedir.tar.gz", None),
        ("", None),
    ],
)
def test_submit_directory_maps_sagemaker_paths_to_the_model_dir(
    value: str, expected: str | None
) -> None:
    config = InstanceConfig.from_env(
        {"SM_MODEL_DIR": "/srv/m", "SAGEMAKER_SUBMIT_DIRECTORY": value}
    )
    assert config.submit_dir == (Path(expected) if expected else None)
