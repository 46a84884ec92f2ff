"""Pieces of `realtime.py`: the in-process baseline, the answer check, stopping servers."""

from __future__ import annotations

import contextlib
import json
import signal
import statistics
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np

from _proc import Managed
from _wrk import BenchError
from modelhost import demo

TOLERANCE = 1e-6


# --- baseline A: XGBoost in this process --------------------------------------------------


def bench_in_process(booster: Any, row: np.ndarray, batch: np.ndarray) -> dict[str, Any]:
    """One-row `inplace_predict` latency and rate on one thread, and batch rows/s."""
    booster.set_param({"nthread": 1})
    x = row.reshape(1, -1)
    for _ in range(300):
        booster.inplace_predict(x)
    calls = 5000
    latencies = np.empty(calls)
    started = time.perf_counter()
    for i in range(calls):
        t0 = time.perf_counter_ns()
        booster.inplace_predict(x)
        latencies[i] = time.perf_counter_ns() - t0
    elapsed = time.perf_counter() - started
    result: dict[str, Any] = {
        "one_row_calls": calls,
        "one_row_p50_us": float(np.percentile(latencies, 50) / 1e3),
        "one_row_p99_us": float(np.percentile(latencies, 99) / 1e3),
        "one_row_calls_per_s": calls / elapsed,
        "batch_rows": int(batch.shape[0]),
    }
    for threads in (1, 2):
        booster.set_param({"nthread": threads})
        booster.inplace_predict(batch)
        times: list[float] = []
        for _ in range(7):
            begin = time.perf_counter()
            booster.inplace_predict(batch)
            times.append(time.perf_counter() - begin)
        result[f"batch_rows_per_s_{threads}_thread"] = batch.shape[0] / statistics.median(times)
    booster.set_param({"nthread": 1})
    return result


def lightgbm_in_process(booster: Any, row: np.ndarray, batch: np.ndarray) -> dict[str, Any]:
    """`bench_in_process` for a LightGBM booster: `Booster.predict(x, num_threads=n)`."""
    x = np.ascontiguousarray(row.reshape(1, -1), dtype=np.float64)
    for _ in range(300):
        booster.predict(x, num_threads=1)
    calls = 5000
    latencies = np.empty(calls)
    started = time.perf_counter()
    for i in range(calls):
        t0 = time.perf_counter_ns()
        booster.predict(x, num_threads=1)
        latencies[i] = time.perf_counter_ns() - t0
    elapsed = time.perf_counter() - started
    result: dict[str, Any] = {
        "label": "LightGBM in-process (one thread): one-row Booster.predict",
        "one_row_calls": calls,
        "one_row_p50_us": float(np.percentile(latencies, 50) / 1e3),
        "one_row_p99_us": float(np.percentile(latencies, 99) / 1e3),
        "one_row_calls_per_s": calls / elapsed,
        "batch_rows": int(batch.shape[0]),
    }
    X = np.ascontiguousarray(batch, dtype=np.float64)
    for threads in (1, 2):
        times = []
        for _ in range(7):
            begin = time.perf_counter()
            booster.predict(X, num_threads=threads)
            times.append(time.perf_counter() - begin)
        result[f"batch_rows_per_s_{threads}_thread"] = X.shape[0] / statistics.median(times)
    return result


def check_answer(url: str, body: str, content_type: str, expected: float) -> float:
    """POST once with urllib; the answer must be 200 and match the model in-process."""
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": content_type}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        status = response.status
        payload = response.read()
        answer_type = response.headers.get("Content-Type", "")
    if status != 200:
        raise BenchError(f"{url} answered {status}: {payload[:300]!r}")
    if "outputs" in payload.decode(errors="replace"):
        value = float(json.loads(payload)["outputs"][0]["data"][0])
    else:
        values = demo.parse_predictions(payload, answer_type)
        if values.shape != (1,):
            raise BenchError(f"{url}: expected one probability, got {payload[:300]!r}")
        value = float(values[0])
    if not abs(value - expected) <= TOLERANCE:
        raise BenchError(f"{url} answered {value}, the model in-process says {expected}")
    return value


@contextlib.contextmanager
def stopping(process: Managed) -> Iterator[Managed]:
    try:
        yield process
    finally:
        code = process.stop()
        # uvicorn re-raises SIGTERM after a graceful shutdown: -15 is a clean stop too.
        how = "" if code in (0, -signal.SIGTERM) else f" (exit code {code})"
        print(f"  stopped {process.name}{how}", flush=True)
