"""Helpers shared by test modules (not fixtures: those live in the conftest.py files).

Deploying through boto3 as a SageMaker user writes it, unique names, the instance processes
of an endpoint, a request loop that counts answers, and the CLI run as a user runs it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.testing.churn import ChurnData
from modelhost.testing.server import ModelhostServer

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


# Fast control loops so tests do not wait on timers.
FAST_ENV = {
    "MODELHOST_HEALTH_CHECK_INTERVAL_S": "0.3",
    "MODELHOST_RECONCILE_INTERVAL_S": "0.2",
    "MODELHOST_SHUTDOWN_GRACE_S": "5",
    "MODELHOST_INSTANCE_STARTUP_TIMEOUT_S": "60",
}


@dataclass
class ChurnModel:
    data: ChurnData
    booster: Any
    artifact: Path

    def expected(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(X))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def deploy(
    sm: Any,
    name: str,
    artifact: str,
    *,
    instances: int = 1,
    image: str | None = XGBOOST_IMAGE,
    wait: bool = True,
    environment: dict[str, str] | None = None,
    mode: str | None = None,
    serverless: dict[str, int] | None = None,
) -> None:
    """create_model + create_endpoint_config + create_endpoint, as SageMaker users write it
    (`mode="MultiModel"`: `artifact` is the prefix TargetModels live under; `serverless`:
    the variant's ServerlessConfig instead of an instance count)."""
    container: dict[str, Any] = {"ModelDataUrl": artifact}
    if image:
        container["Image"] = image
    if mode:
        container["Mode"] = mode
    if environment:
        container["Environment"] = environment
    sm.create_model(
        ModelName=name,
        PrimaryContainer=container,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "ServerlessConfig": serverless}
            if serverless is not None
            else {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": instances,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )


def instance_pids(home: Path, endpoint: str) -> set[int]:
    """Pids of the live instance processes of an endpoint (or of a transform job,
    `transform-JOB`), found by their output: an instance's stdout is its log, under
    `<home>/logs/<endpoint>/`, in spawned and forked instances alike (a forked instance's
    /proc environ and cmdline are its zygote's, so neither can tell)."""
    logs = home / "logs" / endpoint
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            output = Path(os.readlink(entry / "fd" / "1"))
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if output.is_relative_to(logs) and output.name.startswith("i-") and state != "Z":
            pids.add(int(entry.name))
    return pids


def zygote_pids(home: Path) -> set[int]:
    """Pids of the live zygotes of the server with this home (their output is
    `<home>/logs/zygote-RUNTIME-THREADS.log`; their children's is an instance log)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            output = Path(os.readlink(entry / "fd" / "1"))
        except OSError:
            continue
        if output.parent == home / "logs" and output.name.startswith("zygote-"):
            pids.add(int(entry.name))
    return pids


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def forked_instances(home: Path, endpoint: str) -> set[int]:
    """The endpoint's (or job's) instance processes that a zygote forked (an instance's
    own workers are its children, not the zygote's)."""
    zygotes = zygote_pids(home)
    forked = set()
    for pid in instance_pids(home, endpoint):
        with contextlib.suppress(OSError):
            if parent_pid(pid) in zygotes:
                forked.add(pid)
    return forked


class Loop:
    """Invokes an endpoint from a thread until stopped (or for at most `limit_s`).

    Tests wait for a number of answers (`wait_ok`), never for a fixed time: on a busy
    machine a window of seconds holds any number of requests, a count does not.
    """

    def __init__(self, rt: Any, name: str, body: str, limit_s: float = 60.0) -> None:
        self.rt, self.name, self.body, self.limit_s = rt, name, body, limit_s
        self.ok = 0
        self.errors: list[str] = []
        self.answers: list[float] = []
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                resp = self.rt.invoke_endpoint(
                    EndpointName=self.name, ContentType="text/csv", Body=self.body
                )
                answer = float(resp["Body"].read())
                with self._changed:
                    self.answers.append(answer)
                    self.ok += 1
                    self._changed.notify_all()
            except Exception as exc:
                with self._changed:
                    self.errors.append(repr(exc))
                    self._changed.notify_all()

    def wait_ok(self, n: int, timeout_s: float = 60.0) -> int:
        """Block until `n` more requests than now have been answered; return the new total."""
        with self._changed:
            goal = self.ok + n
            if not self._changed.wait_for(lambda: self.ok >= goal, timeout=timeout_s):
                raise AssertionError(
                    f"{self.name}: {self.ok - goal + n} of {n} answers in {timeout_s} s "
                    f"(errors: {self.errors[-3:]})"
                )
            return self.ok

    def __enter__(self) -> Loop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def cli(server: ModelhostServer, *args: str) -> subprocess.CompletedProcess[str]:
    # The CLI signs with the admin key of the server's home, as on the server's machine.
    env = {**os.environ, "MODELHOST_URL": server.url, "MODELHOST_HOME": str(server.home)}
    return subprocess.run(
        [sys.executable, "-m", "modelhost", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# How often the SageMaker SDK's waiters look again in `sdk_session` (the SDK's own: 30 s
# for an endpoint, 120 s for a recommendations job, 5 s for a job).
SDK_POLL_S = 0.5


def sdk_session(**kwargs: Any) -> Any:
    """A `sagemaker.Session(**kwargs)` whose waiters poll every `SDK_POLL_S`: the SDK's
    `_wait_until` sleeps a whole poll before it first looks, so with its defaults every
    `model.deploy()` waits 30 s and every `right_size()` 120 s on a job that is long done.
    Its log tailers (`logs=True`) keep their own poll: they ask for the job's status only
    every 30 s once they have started tailing, so a short poll would make them wait longer.
    Call it inside the test's `warnings.catch_warnings()` (the SDK warns on import)."""
    import sagemaker

    class Session(sagemaker.Session):  # type: ignore[misc]
        def wait_for_endpoint(
            self, endpoint: str, poll: float = SDK_POLL_S, live_logging: bool = False
        ) -> Any:
            return super().wait_for_endpoint(endpoint, poll, live_logging)

        def wait_for_inference_recommendations_job(
            self, job_name: str, poll: float = SDK_POLL_S, log_level: str = "Verbose"
        ) -> Any:
            return super().wait_for_inference_recommendations_job(job_name, poll, log_level)

        def wait_for_processing_job(self, job: str, poll: float = SDK_POLL_S) -> Any:
            return super().wait_for_processing_job(job, poll)

        def wait_for_transform_job(self, job: str, poll: float = SDK_POLL_S) -> Any:
            return super().wait_for_transform_job(job, poll)

    return Session(**kwargs)


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Kill those of `procs` still running and reap them all (a fixture's teardown)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
