"""What authentication costs: SigV4 verification + policy per request, in-process and
end to end.

    python bench/auth.py [--calls 20000] [--requests 2000] [--runs 5]

1. In-process: the gateway's guard on a signed one-row InvokeEndpoint (botocore's
   signature, fixed X-Amz-Date) against the same guard with authentication off (limits
   only); median µs per request over `--runs` runs.
2. End to end on 127.0.0.1: two servers (auth on, auth off) serving the churn XGBoost
   model; `--requests` sequential one-row invocations on one keep-alive connection each;
   median and p99 latency and the ratio. Requests are signed once (the signature stays
   valid for the clock window), so the client's signing cost is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from _machine import format_machine_info, machine_info
from modelhost import demo
from modelhost.gateway.auth.guard import Guard
from modelhost.gateway.auth.keys import KeyStore
from modelhost.settings import Settings
from modelhost.testing import churn
from modelhost.testing.server import ModelhostServer


def _signed(url: str, body: bytes, creds: tuple[str, str]) -> dict[str, str]:
    aws = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "text/csv"})
    SigV4Auth(Credentials(*creds), "sagemaker", "us-east-1").add_auth(aws)
    headers = dict(aws.headers.items())
    headers["Content-Length"] = str(len(body))
    return headers


def in_process(calls: int, runs: int, body: bytes) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        keys = KeyStore(settings.home, settings)
        creds = keys.create("invoker", "churn-*")
        path = "/endpoints/churn-xgb/invocations"
        headers = _signed("http://127.0.0.1:8080" + path, body, creds)
        scope: dict[str, Any] = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "scheme": "http",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
            + [(b"host", b"127.0.0.1:8080")],
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def per_call_us(guard: Guard) -> float:
            started = time.perf_counter()
            for _ in range(calls):
                await guard.check(scope, receive)
            return (time.perf_counter() - started) / calls * 1e6

        out: dict[str, float] = {}
        for label, guard in (
            ("auth_off", Guard(settings, None)),
            ("auth_on", Guard(settings, keys)),
        ):
            samples = [asyncio.run(per_call_us(guard)) for _ in range(runs)]
            out[label] = statistics.median(samples)
        return out


def end_to_end(
    requests: int, runs: int, body: bytes, expected: float
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        booster = churn.train_xgboost(churn.make_churn(n_rows=2000, seed=7), num_round=100, seed=0)
        artifact = churn.write_xgboost_artifact(booster, Path(tmp))
        for label, env in (("auth_on", {}), ("auth_off", {"MODELHOST_AUTH_ENABLED": "false"})):
            env = {**env, "MODELHOST_LOG_LEVEL": "warning"}
            with ModelhostServer(Path(tmp) / f"home-{label}", env=env) as srv:
                sm, _ = srv.clients()
                demo.deploy(sm, artifact)
                path = f"/endpoints/{demo.ENDPOINT_NAME}/invocations"
                headers = _signed(srv.url + path, body, srv.credentials)
                medians, p99s = [], []
                for _ in range(runs):
                    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
                    latencies = []
                    for _ in range(requests):
                        t0 = time.perf_counter()
                        conn.request("POST", path, body=body, headers=headers)
                        resp = conn.getresponse()
                        answer = resp.read()
                        latencies.append((time.perf_counter() - t0) * 1e6)
                        assert resp.status == 200 and abs(float(answer) - expected) < 1e-6
                    conn.close()
                    latencies.sort()
                    medians.append(statistics.median(latencies))
                    p99s.append(latencies[int(0.99 * len(latencies)) - 1])
                out[label] = {
                    "p50_us": statistics.median(medians),
                    "p99_us": statistics.median(p99s),
                }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    print(format_machine_info(machine_info()))
    data = churn.make_churn(n_rows=2000, seed=7)
    row = churn.csv_rows(data.X[:1])[0].encode()
    booster = churn.train_xgboost(data, num_round=100, seed=0)
    expected = float(booster.inplace_predict(data.X[:1])[0])

    guard = in_process(args.calls, args.runs, row)
    print("\nin-process guard, one-row InvokeEndpoint (median of runs)")
    print(f"  auth off (limits only)   {guard['auth_off']:8.1f} µs/request")
    print(f"  auth on (SigV4 + policy) {guard['auth_on']:8.1f} µs/request")
    print(f"  added by authentication  {guard['auth_on'] - guard['auth_off']:8.1f} µs/request")

    e2e = end_to_end(args.requests, args.runs, row, expected)
    print("\nend to end, sequential keep-alive one-row invocations on 127.0.0.1")
    for label in ("auth_off", "auth_on"):
        print(
            f"  {label:<9} p50 {e2e[label]['p50_us']:8.1f} µs   p99 {e2e[label]['p99_us']:8.1f} µs"
        )
    ratio = e2e["auth_on"]["p50_us"] / e2e["auth_off"]["p50_us"]
    print(f"  p50 ratio auth on / off: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
