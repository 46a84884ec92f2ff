"""One row, one connection, five ways in: /invocations vs V2 (JSON, binary, binary with NPY
to the instance) vs InvokeEndpointWithResponseStream.

    python bench/protocols.py [--requests 2000] [--rounds 5]

Starts modelhost (authentication off, loopback) with the churn XGBoost endpoint (batching
off, one worker) and sends one-row requests one at a time over one keep-alive connection
per protocol, the protocols interleaved request by request so machine noise hits them alike.
Prints each protocol's p50/p99 latency and its p50 as a ratio of /invocations' p50 in the
same run (the figure to compare across machines). Results go to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

from _machine import format_machine_info, machine_info
from _modelhost import deploy
from modelhost import demo
from modelhost.testing import churn
from modelhost.testing.server import ModelhostServer

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ENDPOINT = demo.ENDPOINT_NAME  # the name _modelhost.deploy gives


def _deploy(server: ModelhostServer, artifact: Path) -> None:
    sm, _ = server.clients()
    deploy(sm, artifact, 1, {"MH_INSTANCE_BATCHING": "off", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"})


def _requests(row: np.ndarray) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    """Per protocol: (path, body, headers)."""
    csv = ",".join(repr(float(v)) for v in row).encode()
    tensor = {"name": "input-0", "shape": [1, len(row)], "datatype": "FP32"}
    v2_json = json.dumps({"inputs": [{**tensor, "data": row.tolist()}]}).encode()
    header = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": row.nbytes}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    v2_binary = header + row.astype("<f4").tobytes()
    npy = {"content_type": "application/x-npy", "accept": "application/x-npy"}
    header_npy = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": row.nbytes}}],
            "parameters": {"binary_data_output": True, **npy},
        }
    ).encode()
    return {
        "invocations": (
            f"/endpoints/{ENDPOINT}/invocations",
            csv,
            {"Content-Type": "text/csv"},
        ),
        "v2-json": (f"/v2/models/{ENDPOINT}/infer", v2_json, {}),
        "v2-binary": (
            f"/v2/models/{ENDPOINT}/infer",
            v2_binary,
            {"Inference-Header-Content-Length": str(len(header))},
        ),
        "v2-binary-npy": (
            f"/v2/models/{ENDPOINT}/infer",
            header_npy + row.astype("<f4").tobytes(),
            {"Inference-Header-Content-Length": str(len(header_npy))},
        ),
        "response-stream": (
            f"/endpoints/{ENDPOINT}/invocations-response-stream",
            csv,
            {"Content-Type": "text/csv"},
        ),
    }


def _sender(port: int, path: str, body: bytes, headers: dict[str, str]) -> Callable[[], float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)

    def send() -> float:
        started = time.perf_counter()
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {data[:200]!r}")
        return elapsed

    return send


def _check(port: int, requests: dict[str, tuple[str, bytes, dict[str, str]]]) -> None:
    """Every protocol answers the same prediction."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    answers = {}
    for name, (path, body, headers) in requests.items():
        conn.request("POST", path, body, headers)
        data = conn.getresponse().read()
        if name == "invocations":
            answers[name] = float(data)
        elif name == "v2-json":
            answers[name] = json.loads(data)["outputs"][0]["data"][0]
        elif name == "v2-binary":
            answers[name] = struct.unpack("<d", data[-8:])[0]
        elif name == "v2-binary-npy":
            answers[name] = struct.unpack("<f", data[-4:])[0]
        else:  # one event-stream message: 12-byte prelude, headers, payload, 4-byte CRC
            headers_length = struct.unpack(">I", data[4:8])[0]
            answers[name] = float(data[12 + headers_length : -4])
    if len({np.float32(v) for v in answers.values()}) != 1:
        raise RuntimeError(f"the protocols disagree: {answers}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per protocol and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    info = machine_info()
    print(format_machine_info(info))
    data = churn.make_churn(2000, seed=0)
    booster = churn.train_xgboost(data)
    with tempfile.TemporaryDirectory(prefix="bench-protocols-") as tmp:
        artifact = churn.write_xgboost_artifact(booster, Path(tmp) / "model")
        env = {"MODELHOST_AUTH_ENABLED": "false"}
        with ModelhostServer(Path(tmp) / "home", env=env) as server:
            _deploy(server, artifact)
            requests = _requests(data.X[0])
            _check(server.port, requests)
            senders = {n: _sender(server.port, *r) for n, r in requests.items()}
            times: dict[str, list[float]] = {n: [] for n in senders}
            for send in senders.values():  # warm-up
                for _ in range(200):
                    send()
            for _ in range(args.rounds * args.requests):
                for name, send in senders.items():  # request by request: noise hits all
                    times[name].append(send())
    base = statistics.median(times["invocations"])
    rows = {}
    print(f"{'protocol':<16} {'p50 ms':>8} {'p99 ms':>8} {'p50 / invocations':>18}")
    for name, samples in times.items():
        samples.sort()
        p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99)]
        rows[name] = {"p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3, "p50_ratio": p50 / base}
        print(f"{name:<16} {p50 * 1e3:8.3f} {p99 * 1e3:8.3f} {p50 / base:18.2f}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"protocols-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"machine": info, "args": vars(args), "results": rows}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
