"""Baseline B: the HTTP limit — a bare ASGI app doing the same one-row predict.

    python bench/_bare_asgi.py --port P --model DIR/xgboost-model --workers 2 [--fastpredict]

uvicorn + uvloop + httptools, no framework, no access log; `POST /` with one CSV row
answers the probability as text. The predict is XGBoost's public `inplace_predict` (the
issue's baseline), or with `--fastpredict` the C predict without per-call setup that
modelhost's instances use (`modelhost.frameworks.xgboost_fast`), so the comparison
with modelhost shows what the serving path alone buys. Each worker is a process with its
own listening socket bound with SO_REUSEPORT (not uvicorn's `--workers`, whose processes share one
socket: with few keep-alive connections one process often takes them all and the
second core idles). The parent forwards SIGTERM and exits when any worker does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
from typing import Any


def make_app(model_path: str, fastpredict: bool = False) -> Any:
    import numpy as np
    import xgboost as xgb

    booster = xgb.Booster()
    with open(model_path, "rb") as f:
        booster.load_model(bytearray(f.read()))
    booster.set_param({"nthread": 1})
    fast = None
    if fastpredict:
        from modelhost.frameworks.xgboost_fast import FastPredictor

        fast = FastPredictor(booster)

    def predict(row: Any) -> Any:
        out = None if fast is None else fast.predict(row)
        return booster.inplace_predict(row, validate_features=False) if out is None else out

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":  # readiness probe of the benchmark
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        row = np.array(body.split(b","), dtype=np.float32).reshape(1, -1)
        out = repr(float(predict(row)[0])).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/csv"), (b"content-length", b"%d" % len(out))],
            }
        )
        await send({"type": "http.response.body", "body": out})

    return app


def serve_worker(port: int, model_path: str, fastpredict: bool) -> None:
    import uvicorn
    import uvloop

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        make_app(model_path, fastpredict),
        loop="none",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )
    uvloop.run(uvicorn.Server(config).serve(sockets=[sock]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fastpredict", action="store_true", help="modelhost's C predict")
    args = parser.parse_args()
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            try:
                serve_worker(args.port, args.model, args.fastpredict)
            finally:
                os._exit(0)
        children.append(pid)

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _, status = os.wait()  # the first worker to exit ends the baseline
    stop(signal.SIGTERM, None)
    for _ in children[1:]:
        os.wait()
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
