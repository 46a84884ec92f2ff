"""`python -m modelhost.container.supervise -- COMMAND...`: run a user's server as an instance.

A server a user brings (any language) knows nothing about modelhost, so this small
supervisor stands between it and the gateway:

- it forwards SIGTERM/SIGINT to the server (the gateway's stop: SIGTERM, then SIGKILL);
- it ends the server when the gateway is gone (`MH_INSTANCE_PARENT_PID`), as built-in
  instances do themselves, and marks the server with PR_SET_PDEATHSIG so that even a
  `kill -9` of this supervisor takes the server down with it;
- it exits with the server's exit status, so the gateway sees a dead server as a dead
  instance and replaces it.

With `--image IMAGE --engine ENGINE` it runs a container image instead, publishing the
instance port (`SAGEMAKER_BIND_TO_PORT`) to the container's 8080 and mounting the model
directory (`SM_MODEL_DIR`) at /opt/ml/model, as SageMaker does.

A multi-model server (`SAGEMAKER_MULTI_MODEL=true`) expects local directories in
`POST /models`, so it runs on an inner port behind the host agent
(`container.host_agent`), which listens on the instance port, fetches each model and
unloads for a full server; the artifact cache is mounted at its own path into an image.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from modelhost.container.config import ARTIFACT_VARIABLES, ConfigError, InstanceConfig
from modelhost.container.process import die_with_parent, process_alive

if TYPE_CHECKING:
    from modelhost.container.model_source import ModelSource

PARENT_POLL_S = 0.5
TERM_GRACE_S = 10.0


def container_argv(
    engine: str,
    image: str,
    port: int,
    model_dir: str,
    env_keys: Sequence[str],
    name: str,
    mounts: Sequence[str] = (),
) -> list[str]:
    """`docker run` (or podman) for the SageMaker container contract. Values of the
    environment are not on the command line: `-e KEY` makes the engine copy them from
    this process's environment. `mounts`: more host directories, read-only, at their
    own paths (the artifact cache, whose paths the host agent sends)."""
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
    for mount in mounts:
        argv += ["-v", f"{mount}:{mount}:ro"]
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
            _stop(child)
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
    parent = int(env["MH_INSTANCE_PARENT_PID"]) if env.get("MH_INSTANCE_PARENT_PID") else None
    port = int(env.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    source = None
    if env.get("SAGEMAKER_MULTI_MODEL", "").strip().lower() == "true":
        source = _model_source(env)
        if source is None:
            return 2
        # The server listens on an inner port; the agent takes the instance port.
        env["SAGEMAKER_BIND_TO_PORT"] = str(_free_port())
    if opts.image:
        argv = container_argv(
            opts.engine,
            opts.image,
            int(env["SAGEMAKER_BIND_TO_PORT"]) if source is not None else port,
            env.get("SM_MODEL_DIR", "/opt/ml/model"),
            opts.env_key,
            f"modelhost-{env.get('MH_INSTANCE_ID', os.getpid())}",
            [str(source.cache_dir)] if source is not None else (),
        )
    else:
        argv = opts.command
    if not argv:
        parser.error("give a command after -- or --image")
    try:
        if source is not None:
            return run_behind_agent(argv, parent, env, port, source)
        return run(argv, parent, env)
    except OSError as exc:
        print(f"modelhost: cannot start {argv[0]!r}: {exc}", file=sys.stderr)
        return 127


def _model_source(env: Mapping[str, str]) -> ModelSource | None:
    from modelhost.container.model_source import ModelSource

    # Only the artifact variables: the rest of the environment is the user's server's.
    try:
        config = InstanceConfig.from_env({k: v for k, v in env.items() if k in ARTIFACT_VARIABLES})
    except ConfigError as exc:
        print(f"modelhost.container.supervise: {exc}", file=sys.stderr)
        return None
    return ModelSource(config)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_behind_agent(
    argv: Sequence[str],
    parent_pid: int | None,
    env: Mapping[str, str],
    port: int,
    source: ModelSource,
) -> int:
    """Run the server (on `env`'s inner port) with the host agent on `port`; the server's
    exit status. Signals go to the server; the agent stops when the server has exited."""
    import uvicorn
    import uvloop

    from modelhost.container.host_agent import HostAgent

    inner = int(env["SAGEMAKER_BIND_TO_PORT"])
    child = subprocess.Popen(list(argv), env=dict(env), preexec_fn=die_with_parent)

    class AgentServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(sig)

    server = AgentServer(
        uvicorn.Config(
            HostAgent(source, inner),
            host=env.get("MH_INSTANCE_HOST", "").strip() or "127.0.0.1",
            port=port,
            loop="none",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            date_header=False,
            timeout_keep_alive=75,  # longer than the gateway's idle timeout (container.server)
            timeout_graceful_shutdown=5,
        )
    )

    async def serve() -> None:
        watcher = asyncio.create_task(_watch(child, parent_pid, server))
        try:
            await server.serve()
        finally:
            watcher.cancel()

    uvloop.run(serve())
    if child.poll() is None:  # the agent could not start (port taken): stop the server too
        _stop(child)
    return child.wait()


async def _watch(child: subprocess.Popen[bytes], parent_pid: int | None, server: object) -> None:
    while child.poll() is None:
        if parent_pid and not process_alive(parent_pid):
            await asyncio.to_thread(_stop, child)
            break
        await asyncio.sleep(PARENT_POLL_S)
    server.should_exit = True  # type: ignore[attr-defined]


def _stop(child: subprocess.Popen[bytes]) -> None:
    child.terminate()
    deadline = time.monotonic() + TERM_GRACE_S
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if child.poll() is None:
        child.kill()
    child.wait()


if __name__ == "__main__":
    sys.exit(main())
