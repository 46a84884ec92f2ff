"""How an Image becomes an instance command (pure parts, no processes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modelhost.container.supervise import container_argv
from modelhost.fleet.byoc import ByocError, supervisor_argv
from modelhost.fleet.images import builtin_runtime_for_image


@pytest.mark.parametrize(
    ("image", "runtime"),
    [
        (None, "auto"),
        ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1", "xgboost"),
        ("sagemaker-scikit-learn:1.2-1", "sklearn"),
        ("lightgbm", "lightgbm"),
        ("my-registry/onnx-runtime:1", "onnx"),
        ("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu", "pytorch"),
        ("mlflow", "mlflow"),
        ("command:python xgboost_server.py", None),
        ("docker://my-xgboost-server:1", None),
        ("/opt/servers/xgboost", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/my-server:1", None),
    ],
)
def test_image_selects_runtime_or_own_server(image: str | None, runtime: str | None) -> None:
    assert builtin_runtime_for_image(image) == runtime


def test_command_image_runs_under_the_supervisor(tmp_path: Path) -> None:
    server = tmp_path / "bin" / "serve.sh"
    server.parent.mkdir()
    server.write_text("#!/bin/sh\n")
    server.chmod(0o755)
    argv = supervisor_argv("command:bin/serve.sh --workers 2", tmp_path, [])
    assert argv == [
        sys.executable,
        "-m",
        "modelhost.container.supervise",
        "--",
        str(server),
        "--workers",
        "2",
        "serve",
    ]
    assert supervisor_argv("command:sh -c 'exit 0'", tmp_path, [])[-4:] == [
        "sh",
        "-c",
        "exit 0",
        "serve",
    ]
    assert supervisor_argv(str(server), tmp_path, [])[-2:] == [str(server), "serve"]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("command:", "names no command"),
        ("command:no-such-program-xyz", "not on the PATH"),
        ("command:./missing.sh", "does not exist"),
        ("command:node 'unclosed", "not a valid command line"),
        ("/nonexistent/server", "does not exist"),
    ],
)
def test_bad_commands_explain_themselves(tmp_path: Path, image: str, message: str) -> None:
    with pytest.raises(ByocError, match=message):
        supervisor_argv(image, tmp_path, [])


def test_not_executable_is_refused(tmp_path: Path) -> None:
    server = tmp_path / "serve.sh"
    server.write_text("#!/bin/sh\n")
    with pytest.raises(ByocError, match="chmod"):
        supervisor_argv(str(server), tmp_path, [])


def test_container_argv_follows_the_sagemaker_contract() -> None:
    argv = container_argv("docker", "my/server:1", 41234, "/cache/abc", ["B", "A"], "mh-1")
    assert argv == [
        "docker",
        "run",
        "--rm",
        "--name",
        "mh-1",
        "-p",
        "127.0.0.1:41234:8080",
        "-v",
        "/cache/abc:/opt/ml/model:ro",
        "-e",
        "A",
        "-e",
        "B",
        "my/server:1",
        "serve",
    ]
