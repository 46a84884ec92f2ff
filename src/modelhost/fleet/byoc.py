"""Bring your own server: how a container `Image` that is not a built-in runtime runs.

Three forms (docs/byoc.md):

- `command:<program> [args...]` — a command line, split like a shell would but never run
  by one; relative program paths resolve against the model directory, which is also the
  working directory, so a server can ship inside its own artifact;
- an absolute path, or `file:///path`, to an executable;
- anything else (or `docker://<image>`, to run an image whose name happens to name a
  built-in framework) is a container image, run with docker or podman when one of them
  has a running engine.

In every case the server is started with the argument `serve` (as SageMaker does), the
port in `SAGEMAKER_BIND_TO_PORT`, the model in `SM_MODEL_DIR`, and the model's
`Environment`; it is supervised by `modelhost.container.supervise`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

COMMAND_PREFIX = "command:"
ENGINES = ("docker", "podman")


class ByocError(Exception):
    """The image cannot be run here; the message is an actionable FailureReason."""


def supervisor_argv(
    image: str, model_dir: Path, env_keys: list[str], *, model_on_node: bool = False
) -> list[str]:
    """The instance argv for a user's server or container image. With `model_on_node`
    (fleet 'ray' with an artifact) `model_dir` is a placeholder the node replaces with its
    own copy (`fleet/ray/artifacts.node_argv`), so a program shipped in the artifact is
    checked there, not here."""
    base = [sys.executable, "-m", "modelhost.container.supervise"]
    if image.startswith(COMMAND_PREFIX):
        words = _command(image[len(COMMAND_PREFIX) :], model_dir, check=not model_on_node)
        return [*base, "--", *words, "serve"]
    if image.startswith(("/", "file://")):
        path = Path(image.removeprefix("file://"))
        _check_executable(path, image)
        return [*base, "--", str(path), "serve"]
    try:
        engine = available_engine()
    except ByocError as exc:
        raise ByocError(f"image '{image}': {exc}") from None
    argv = [*base, "--image", image.removeprefix("docker://"), "--engine", engine]
    for key in env_keys:
        argv += ["--env-key", key]
    return argv


def _command(line: str, model_dir: Path, check: bool = True) -> list[str]:
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ByocError(
            f"Image '{COMMAND_PREFIX}{line}' is not a valid command line: {exc}."
        ) from exc
    if not words:
        raise ByocError(
            f"Image '{COMMAND_PREFIX}' names no command: use 'command:<program> "
            "[args...]', e.g. 'command:node server.js'."
        )
    program = words[0]
    if "/" in program:
        relative = not Path(program).is_absolute()
        path = model_dir / program if relative else Path(program)
        if check or not relative:
            _check_executable(path, f"{COMMAND_PREFIX}{line}")
        words[0] = str(path)
    elif shutil.which(program) is None:
        raise ByocError(
            f"Image '{COMMAND_PREFIX}{line}': the program '{program}' is not on the PATH of "
            "the modelhost server. Install it or give its absolute path."
        )
    return words


def _check_executable(path: Path, image: str) -> None:
    if not path.is_file():
        raise ByocError(f"Image '{image}': {path} does not exist or is not a file.")
    if not os.access(path, os.X_OK):
        raise ByocError(f"Image '{image}': {path} is not executable (chmod +x it).")


def available_engine() -> str:
    """docker or podman, whichever has a running engine; else ByocError saying why."""
    problems = []
    for engine in ENGINES:
        exe = shutil.which(engine)
        if exe is None:
            problems.append(f"{engine}: not installed")
            continue
        try:
            out = subprocess.run(
                [exe, "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{engine}: {exc}")
            continue
        if out.returncode == 0:
            return exe
        detail = (out.stderr or out.stdout).strip().splitlines()
        problems.append(f"{engine}: {detail[-1] if detail else f'exit {out.returncode}'}")
    raise ByocError(
        "running a container image needs docker or podman with a running engine, and this "
        f"machine has none ({'; '.join(problems)}). Use a built-in runtime image, or "
        "'command:<your server command>' to run your server without a container."
    )
