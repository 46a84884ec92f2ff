"""`python -m modelhost.container.supervise -- COMMAND...`: run a user's server as an instance.

A server a user brings (any language) knows nothing about modelhost, so this small
supervisor stands between it and the gateway:

- it forwards SIGTERM/SIGINT to the server (the gateway's stop: SIGTERM, then SIGKILL);
- it ends the server when the gateway is gone (`MODELHOST_PARENT_PID`), as built-in
  instances do themselves, and marks the server with PR_SET_PDEATHSIG so that even a
  `kill -9` of this supervisor takes the server down with it;
- it exits with the server's exit status, so the gateway sees a dead server as a dead
  instance and replaces it.

With `--image IMAGE --engine ENGINE` it runs a container image instead, publishing the
instance port (`SAGEMAKER_BIND_TO_PORT`) to the container's 8080 and mounting the model
directory (`SM_MODEL_DIR`) at /opt/ml/model, as SageMaker does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from modelhost.container.process import die_with_parent, process_alive

PARENT_POLL_S = 0.5
TERM_GRACE_S = 10.0


def container_argv(
    engine: str, image: str, port: int, model_dir: str, env_keys: Sequence[str], name: str
) -> list[str]:
    """`docker run` (or podman) for the SageMaker container contract. Values of the
    environment are not on the command line: `-e KEY` makes the engine copy them from
    this process's environment."""
    argv = [
        engine,
        "run",
        "--rm",
        "--name",
        name,
        "-p",
        f"127.0.0.1:{port}:8080",
        "-v",
        f"{model_dir}:/opt/ml/model:ro",
    ]
    for key in sorted(env_keys):
        argv += ["-e", key]
    return [*argv, image, "serve"]


def run(argv: Sequence[str], parent_pid: int | None, env: Mapping[str, str]) -> int:
    child = subprocess.Popen(list(argv), env=dict(env), preexec_fn=die_with_parent)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            return child.wait(timeout=PARENT_POLL_S)
        except subprocess.TimeoutExpired:
            pass
        if parent_pid and not process_alive(parent_pid):
            child.terminate()
            deadline = time.monotonic() + TERM_GRACE_S
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if child.poll() is None:
                child.kill()
            return child.wait()


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelhost.container.supervise")
    parser.add_argument("--image", help="container image to run instead of a command")
    parser.add_argument("--engine", default="docker", help="docker or podman")
    parser.add_argument(
        "--env-key",
        action="append",
        default=[],
        help="environment variable passed into the container (repeatable)",
    )
    parser.add_argument("command", nargs="*", help="the server command (after --)")
    opts = parser.parse_args(args)
    env = dict(os.environ)
    parent = int(env["MODELHOST_PARENT_PID"]) if env.get("MODELHOST_PARENT_PID") else None
    if opts.image:
        argv = container_argv(
            opts.engine,
            opts.image,
            int(env.get("SAGEMAKER_BIND_TO_PORT", "8080")),
            env.get("SM_MODEL_DIR", "/opt/ml/model"),
            opts.env_key,
            f"modelhost-{env.get('MODELHOST_INSTANCE_ID', os.getpid())}",
        )
    else:
        argv = opts.command
    if not argv:
        parser.error("give a command after -- or --image")
    try:
        return run(argv, parent, env)
    except OSError as exc:
        print(f"modelhost: cannot start {argv[0]!r}: {exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
