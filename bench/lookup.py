"""Prediction-store lookup benchmark: single-key GETs over HTTP against `modelhost serve`.

    python bench/lookup.py [--keys 1000000] [--lookups 20000] [--runs 3]
                           [--backends embedded,redis]

Writes a transform job's output for `--keys` customers (input CSV with a customer id,
`.out` with one score per line), starts `modelhost serve` on 127.0.0.1 for each backend,
loads the output with `POST /predictions/{store}/load` (timed), then measures one
keep-alive connection sending `GET /predictions/bench/{random key}` one after another.
Baselines in the same run: the raw in-process `get` on the same backend (what the store
costs) and `GET /ping` on the same server (what one HTTP round trip costs). Reports
medians over `--runs` of p50/p99 and the goal (p99 < 2 ms). Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from _machine import format_machine_info, machine_info, package_version
from _proc import machine_busy_seconds, tree_cpu_seconds
from modelhost.settings import Settings
from modelhost.store.predictions import open_prediction_store
from modelhost.testing.redis import local_redis_server, redis_server_binary
from modelhost.testing.server import ModelhostServer

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
STORE = "bench"
GOAL_P99_MS = 2.0
NOISY_OTHER_CPU_PCT = 25.0


def others_cpu_pct(run: Callable[[], Any]) -> tuple[Any, float]:
    """Run `run`; also return the CPU other processes used meanwhile (% of one core).

    This process's tree (the client, the server, redis-server) is left out.
    """
    me = os.getpid()
    machine, mine, start = machine_busy_seconds(), tree_cpu_seconds(me), time.monotonic()
    result = run()
    elapsed = time.monotonic() - start
    used = (machine_busy_seconds() - machine) - (tree_cpu_seconds(me) - mine)
    return result, max(0.0, used / elapsed * 100)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys in the store")
    parser.add_argument("--lookups", type=int, default=20_000, help="GETs per measured run")
    parser.add_argument("--runs", type=int, default=3, help="measured runs (medians reported)")
    parser.add_argument(
        "--noisy-retries",
        type=int,
        default=2,
        help="repeat a run during which other processes used > 25%% of a core (default 2)",
    )
    parser.add_argument(
        "--backends",
        default="embedded,redis" if redis_server_binary() else "embedded",
        help="comma-separated: embedded, redis (a redis-server is started on loopback)",
    )
    return parser.parse_args(argv)


def write_job_output(root: Path, keys: int) -> tuple[Path, Path]:
    """A transform input (customer_id, two features) and its `.out`, in 10 objects."""
    rng = random.Random(0)
    inp, out = root / "in", root / "out"
    inp.mkdir(parents=True)
    out.mkdir(parents=True)
    parts = 10
    for part in range(parts):
        ids = range(part * keys // parts, (part + 1) * keys // parts)
        (inp / f"part-{part:02d}.csv").write_text(
            "".join(f"cust-{i:07d},{i % 97},{i % 13}\n" for i in ids)
        )
        (out / f"part-{part:02d}.csv.out").write_text("".join(f"{rng.random():.6f}\n" for _ in ids))
    return inp, out


class RawClient:
    """A minimal keep-alive HTTP/1.1 client, so the client adds as little as possible."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def get(self, path: str) -> tuple[int, bytes]:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in lines
            if line.lower().startswith(b"content-length")
        )
        while len(rest) < length:
            rest += self._recv()
        self.buf = rest[length:]
        return status, rest[:length]

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    return {
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "p999_ms": at(0.999),
        "max_ms": ordered[-1] / 1e6,
        "per_s": len(ordered) / (sum(ordered) / 1e9),
    }


def timed(calls: int, one: Callable[[int], None]) -> dict[str, float]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    for i in range(calls):
        start = clock()
        one(i)
        samples.append(clock() - start)
    return percentiles(samples)


@contextmanager
def backend_url(kind: str) -> Iterator[str]:
    if kind == "redis":
        with local_redis_server() as url:
            yield url
    else:
        yield "embedded"


def bench_backend(kind: str, args: argparse.Namespace, data: tuple[Path, Path]) -> dict[str, Any]:
    keys = [f"cust-{i:07d}" for i in range(args.keys)]
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="mh-lookup-home-") as home, backend_url(kind) as url:
        # Authentication off, as in bench/realtime.py: the raw-socket client replays one
        # request and cannot sign each one (signing adds ≈ 31 µs, see bench/auth.py).
        env = {
            "MODELHOST_LOG_LEVEL": "warning",
            "MODELHOST_PREDICTION_STORE_URL": url,
            "MODELHOST_AUTH_ENABLED": "false",
        }
        with ModelhostServer(Path(home), env=env) as server:
            print(f"\n[{kind}] loading {args.keys:,} keys through POST /predictions/{STORE}/load")
            start = time.perf_counter()
            body = json.dumps(
                {"InputLocation": str(data[0]), "OutputLocation": str(data[1]), "KeyColumn": "0"}
            ).encode()
            import urllib.request

            req = urllib.request.Request(
                f"{server.url}/predictions/{STORE}/load", data=body, method="POST"
            )
            with urllib.request.urlopen(req, timeout=3600) as resp:
                loaded = json.loads(resp.read())
            load_s = time.perf_counter() - start
            assert loaded["KeyCount"] == args.keys, loaded
            print(f"  loaded {loaded['KeyCount']:,} keys in {load_s:.1f} s "
                  f"({loaded['KeyCount'] / load_s:,.0f} keys/s)")  # fmt: skip

            store = open_prediction_store(Settings(home=Path(home), prediction_store_url=url))
            client = RawClient(server.port)
            try:
                status, answer = client.get(f"/predictions/{STORE}/{keys[123]}")
                expected = store.get(STORE, keys[123])[1]
                assert status == 200 and json.loads(answer)["Prediction"] == expected, answer
                # Warm-up: connection, statement caches, page cache.
                for _ in range(2000):
                    client.get(f"/predictions/{STORE}/{rng.choice(keys)}")
                runs: dict[str, list[dict[str, float]]] = {
                    "in_process": [],
                    "ping": [],
                    "http": [],
                }
                busy: list[float] = []
                for run in range(args.runs):

                    def one_run() -> dict[str, dict[str, float]]:
                        picks = [rng.choice(keys) for _ in range(args.lookups)]

                        def direct(i: int) -> None:
                            store.get(STORE, picks[i])

                        def ping(_: int) -> None:
                            client.get("/ping")

                        def lookup(i: int) -> None:
                            status, _ = client.get(f"/predictions/{STORE}/{picks[i]}")
                            if status != 200:
                                raise RuntimeError(f"lookup answered {status}")

                        return {
                            "in_process": timed(args.lookups, direct),
                            "ping": timed(args.lookups, ping),
                            "http": timed(args.lookups, lookup),
                        }

                    # Keep the least disturbed of up to 1 + noisy_retries tries.
                    best, others = others_cpu_pct(one_run)
                    for _ in range(args.noisy_retries):
                        if others <= NOISY_OTHER_CPU_PCT:
                            break
                        again, again_others = others_cpu_pct(one_run)
                        if again_others < others:
                            best, others = again, again_others
                    for name, figures in best.items():
                        runs[name].append(figures)
                    busy.append(others)
                    print(f"  run {run + 1}: http p50 {best['http']['p50_ms']:.3f} ms, "
                          f"p99 {best['http']['p99_ms']:.3f} ms "
                          f"(other processes: {others:.0f}% of a core)")  # fmt: skip
            finally:
                client.close()
                store.close()
    medians = {
        name: {k: statistics.median(r[k] for r in results) for k in results[0]}
        for name, results in runs.items()
    }
    return {
        "load_s": load_s,
        "keys": args.keys,
        "lookups": args.lookups,
        "others_cpu_pct": busy,
        **medians,
    }


def report(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "",
        "single-key lookups, one keep-alive connection (medians over runs; ms)",
        f"{'backend':<10} {'what':<26} {'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'/s':>9}",
    ]
    names = {
        "in_process": "in-process get (baseline)",
        "ping": "HTTP GET /ping (baseline)",
        "http": "HTTP GET /predictions/…",
    }
    for kind, res in results.items():
        for what, label in names.items():
            r = res[what]
            lines.append(
                f"{kind:<10} {label:<26} {r['p50_ms']:>8.3f} {r['p90_ms']:>8.3f} "
                f"{r['p99_ms']:>8.3f} {r['p999_ms']:>8.3f} {r['per_s']:>9,.0f}"
            )
        http, ping = res["http"], res["ping"]
        lines.append(
            f"{kind:<10} lookup / ping p50 {http['p50_ms'] / ping['p50_ms']:.2f}x, "
            f"p99 {http['p99_ms'] / ping['p99_ms']:.2f}x; load {res['load_s']:.1f} s "
            f"for {res['keys']:,} keys"
        )
    lines.append("")
    for kind, res in results.items():
        p99 = res["http"]["p99_ms"]
        verdict = "met" if p99 < GOAL_P99_MS else "NOT met"
        lines.append(f"goal: {kind} p99 over HTTP < {GOAL_P99_MS} ms: {p99:.3f} ms, {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    info["redis"] = package_version("redis")
    print(format_machine_info(info))
    print(f"redis-py: {info['redis']}, redis-server: {redis_server_binary()}")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mh-lookup-data-") as tmp:
        print(f"\nwriting a transform output with {args.keys:,} keys")
        data = write_job_output(Path(tmp), args.keys)
        for kind in args.backends.split(","):
            results[kind] = bench_backend(kind.strip(), args, data)
    print(report(results))
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"lookup-{stamp}.json"
    path.write_text(json.dumps({"machine": info, "args": vars(args), "results": results}, indent=2))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
