"""Helpers for container tests: tiny models and a real instance process on loopback."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from modelhost.fleet.local import free_port

N_FEATURES = 4
STATES = ("CA", "NY", "TX", "WA", "AK", "NJ")  # the multi-model tests' models


def train_booster(seed: int = 0) -> tuple[Any, np.ndarray]:
    """A small binary:logistic booster and a few rows to score."""
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, N_FEATURES)).astype(np.float32)
    y = (X[:, 0] - X[:, 3] > 0).astype(int)
    params = {"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": seed}
    return xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=6), X[:10]


def write_booster(model_dir: Path, booster: Any) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    return model_dir


class Instance:
    """`python -m modelhost.container` (or `argv`) in a child process; always stopped on exit."""

    def __init__(
        self, model_dir: Path, env: dict[str, str] | None = None, argv: list[str] | None = None
    ) -> None:
        self.port = free_port()
        self.log_path = model_dir.parent / f"instance-{self.port}.log"
        full_env = dict(os.environ)
        full_env.update(
            {
                "SAGEMAKER_BIND_TO_PORT": str(self.port),
                "SM_MODEL_DIR": str(model_dir),
                "OMP_NUM_THREADS": "1",
                "PYTHONWARNINGS": "default",
            }
        )
        full_env.update(env or {})
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv or [sys.executable, "-m", "modelhost.container"],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> Instance:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    def invoke(
        self, body: bytes, content_type: str | None = None, accept: str | None = None, **extra: str
    ) -> tuple[int, dict[str, str], bytes]:
        headers = dict(extra)
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        return self.request("POST", "/invocations", body, headers)

    def wait_listening(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"instance exited early:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"instance never listened:\n{self.log()}")

    def wait_ping(self, timeout: float = 30) -> tuple[int, dict[str, Any]]:
        """Poll /ping until it is not 503; return (status, JSON body)."""
        self.wait_listening(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _, body = self.request("GET", "/ping", timeout=5)
            if status != 503:
                return status, json.loads(body) if body else {}
            time.sleep(0.05)
        raise AssertionError(f"model never finished loading:\n{self.log()}")
