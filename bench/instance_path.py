"""The instance's own CPU per invocation, in process: its HTTP server's connections, the
CSV decode, the merged predict and the answer, without sockets.

    python bench/instance_path.py [--connections 32] [--rounds 300] [--repeats 5]
                                  [--no-batching] [--model xgboost|lightgbm]

Loads the churn XGBoost model (69 features, 100 trees; `--model lightgbm`: a LightGBM
model of the same data, 100 trees, max_depth 5, served with 2 threads) into the
instance's real invoke path (`ServedModel` with a `Batcher`, as `MH_INSTANCE_BATCHING=on`
serves it), opens
`--connections` connections of `container/http_connection.py` on fake transports, and
runs rounds in which every connection sends one `POST /invocations` of one CSV row and
the event loop answers all of them (what the gateway's 32 hop connections do at 32
client connections). Prints the CPU time per request (minimum over `--repeats` of
`--rounds` rounds). No sockets, so the syscalls are not in it, and the figure stays
meaningful on a busy machine where wrk throughput does not. Runs against whatever
`modelhost` is importable: set `PYTHONPATH` to another tree's `src` to compare versions
in one sitting (bench/gateway_path.py does the same for the gateway).
"""

from __future__ import annotations

import argparse
import asyncio
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

DATE = b"date: Sun, 06 Dec 2026 20:00:00 GMT\r\n"


class _Transport:
    """One connection's socket: keeps what the server writes."""

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _App:
    model: Any = None
    executor: Any = None


class _Server:
    """What a connection needs of its server (`ServerSide`)."""

    def __init__(self, app: _App) -> None:
        from modelhost.container.http_connection import HttpLimits

        self.app = app
        self.limits = HttpLimits()
        self.loop = asyncio.get_running_loop()
        self.tasks: set[asyncio.Task[None]] = set()
        self.date_header = DATE

    def opened(self, connection: Any) -> None:
        pass

    def closed(self, connection: Any) -> None:
        pass


def _served_model(work: Path, batching: bool, max_rows: int, model: str) -> tuple[Any, bytes]:
    from modelhost.container.batching import Batcher
    from modelhost.container.invoke import ServedModel
    from modelhost.frameworks.base import RuntimeOptions
    from modelhost.frameworks.xgboost import XGBoostRuntime
    from modelhost.testing import churn

    train, test = churn.make_churn(5000, seed=0).split(test_fraction=0.2, seed=0)
    row = churn.csv_rows(test.X[0])[0].encode()
    if model == "lightgbm":
        import lightgbm as lgb
        import numpy as np

        from modelhost.frameworks.lightgbm import LightGBMRuntime

        params = {"objective": "binary", "max_depth": 5, "num_threads": 1, "verbose": -1}
        X = np.ascontiguousarray(train.X, dtype=np.float64)
        booster = lgb.train({**params, "seed": 0}, lgb.Dataset(X, train.y), num_boost_round=100)
        booster.save_model(str(work / "model.txt"))
        # nthread 2: an ml.m5.large's share, as the instance gets it (OMP_NUM_THREADS).
        lgb_runtime = LightGBMRuntime(RuntimeOptions(nthread=2))
        lgb_runtime.load(work)
        batcher = Batcher(lgb_runtime, max_rows, 0.0) if batching else None
        return ServedModel(lgb_runtime, str(work), batcher), row
    trained = churn.train_xgboost(train, num_round=100, seed=0, nthread=1)
    artifact = churn.write_xgboost_artifact(trained, work / "model")
    model_dir = work / "extracted"
    model_dir.mkdir()
    with tarfile.open(artifact) as tar:
        tar.extractall(model_dir, filter="data")
    runtime = XGBoostRuntime()
    runtime.load(model_dir)
    batcher = Batcher(runtime, max_rows, 0.0) if batching else None
    return ServedModel(runtime, str(model_dir), batcher), row


async def _measure(args: argparse.Namespace, work: Path) -> float:
    from modelhost.container.http_connection import HttpConnection

    app = _App()
    app.model, row = _served_model(work, not args.no_batching, args.max_rows, args.model)
    request = (
        b"POST /invocations HTTP/1.1\r\nhost: localhost\r\ncontent-length: %d\r\n"
        b"content-type: text/csv\r\naccept: text/csv\r\n\r\n%s" % (len(row), row)
    )
    server = _Server(app)
    connections = []
    for _ in range(args.connections):
        connection, transport = HttpConnection(server), _Transport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        connections.append((connection, transport))

    async def one_round() -> None:
        for connection, _ in connections:
            connection.data_received(request)
        while not all(transport.out for _, transport in connections):
            await asyncio.sleep(0)
        for _, transport in connections:
            if not transport.out[0].startswith(b"HTTP/1.1 200 "):
                raise SystemExit(f"the instance answered {transport.out[0][:200]!r}")
            transport.out.clear()

    for _ in range(50):  # warm up
        await one_round()
    best = float("inf")
    for _ in range(args.repeats):
        started = time.process_time()
        for _ in range(args.rounds):
            await one_round()
        used = time.process_time() - started
        best = min(best, used / (args.rounds * args.connections) * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-rows", type=int, default=64, help="MH_INSTANCE_BATCH_MAX_ROWS")
    parser.add_argument("--no-batching", action="store_true", help="MH_INSTANCE_BATCHING=off")
    parser.add_argument("--model", choices=("xgboost", "lightgbm"), default="xgboost")
    args = parser.parse_args()
    if args.connections < 1 or args.rounds < 1 or args.repeats < 1:
        parser.error("--connections, --rounds and --repeats must be positive")
    import uvloop  # the instance's loop

    import modelhost

    with tempfile.TemporaryDirectory(prefix="instance-path-") as tmp:
        used = uvloop.run(_measure(args, Path(tmp)))
    kind = "batching" if not args.no_batching else "no batching"
    print(
        f"{Path(modelhost.__file__).parent}: {used:.2f} µs CPU per request "
        f"(instance in process, {args.model}, {args.connections} connections, {kind})"
    )


if __name__ == "__main__":
    main()
