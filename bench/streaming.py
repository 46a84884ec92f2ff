"""A script-mode model that streams: what a token costs through each way in.

    python bench/streaming.py [--tokens 64] [--requests 300] [--rounds 3]

Starts modelhost (authentication off, loopback) with a script-mode model whose `predict_fn`
yields `--tokens` tokens as fast as it can, and asks it over one keep-alive connection per
way, interleaved request by request so machine noise hits them alike:

- `whole`: the same handler answering the tokens joined (no streaming), `/invocations`;
- `invoke-joined`: the streaming handler through InvokeEndpoint (the gateway joins);
- `invoke-joined-async`: the same with an async generator (no thread hop per token);
- `response-stream`: InvokeEndpointWithResponseStream, read to the end (first part timed);
- `v2-generate-stream`: the V2 generate extension's SSE, read to the end.

Prints p50/p99 per way, the p50 ratio to `whole` in the same run (the figure to compare
across machines), the streamed per-token overhead ((p50 - whole p50) / tokens) and the time
to the first part. Results go to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from _machine import format_machine_info, machine_info
from _modelhost import deploy
from modelhost import demo
from modelhost.testing.server import ModelhostServer

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ENDPOINT = demo.ENDPOINT_NAME  # the name _modelhost.deploy gives
SCRIPT = """
import json


def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    text = body.decode() if isinstance(body, (bytes, bytearray)) else body
    return json.loads(text)["text_input"] if content_type.startswith("application/json") else text


async def _async_tokens(count):
    for i in range(count):
        yield f"token-{i} "


def predict_fn(text, model):
    kind, _, count = text.partition(" ")
    if kind == "async":
        return _async_tokens(int(count))
    tokens = (f"token-{i} " for i in range(int(count or kind)))
    return "".join(tokens) if kind == "whole" else tokens


def output_fn(tokens, accept):
    return tokens, "text/plain"
"""


def _deploy(server: ModelhostServer, model_dir: Path) -> None:
    sm, _ = server.clients()
    deploy(sm, model_dir, 1, {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"})


def _ways(tokens: int) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    """Per way: (path, body, headers)."""
    plain = {"Content-Type": "text/plain"}
    generate = json.dumps({"text_input": str(tokens)}).encode()
    return {
        "whole": (f"/endpoints/{ENDPOINT}/invocations", f"whole {tokens}".encode(), plain),
        "invoke-joined": (f"/endpoints/{ENDPOINT}/invocations", str(tokens).encode(), plain),
        "invoke-joined-async": (
            f"/endpoints/{ENDPOINT}/invocations",
            f"async {tokens}".encode(),
            plain,
        ),
        "response-stream": (
            f"/endpoints/{ENDPOINT}/invocations-response-stream",
            str(tokens).encode(),
            plain,
        ),
        "v2-generate-stream": (f"/v2/models/{ENDPOINT}/generate_stream", generate, {}),
    }


def _sender(
    port: int, path: str, body: bytes, headers: dict[str, str]
) -> Callable[[], tuple[float, float]]:
    """A function sending one request: (seconds to the first body bytes, to the end)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)

    def send() -> tuple[float, float]:
        started = time.perf_counter()
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        first = response.read1(65536)
        first_s = time.perf_counter() - started
        rest = response.read()
        if response.status != 200 or not first:
            raise RuntimeError(f"{path}: {response.status} {(first + rest)[:200]!r}")
        return first_s, time.perf_counter() - started

    return send


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=64, help="tokens per answer")
    parser.add_argument("--requests", type=int, default=300, help="per way and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    info = machine_info()
    print(format_machine_info(info))
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        code = Path(tmp) / "model" / "code"
        code.mkdir(parents=True)
        (code / "inference.py").write_text(SCRIPT)
        with ModelhostServer(Path(tmp) / "home", env={"MODELHOST_AUTH_ENABLED": "false"}) as srv:
            _deploy(srv, code.parent)
            senders = {n: _sender(srv.port, *w) for n, w in _ways(args.tokens).items()}
            times: dict[str, list[tuple[float, float]]] = {n: [] for n in senders}
            for send in senders.values():  # warm-up
                for _ in range(50):
                    send()
            for _ in range(args.rounds * args.requests):
                for name, send in senders.items():  # request by request: noise hits all
                    times[name].append(send())
    base = statistics.median(end for _, end in times["whole"])
    rows = {}
    print(f"{args.tokens} tokens per answer")
    print(f"{'way':<20} {'p50 ms':>8} {'p99 ms':>8} {'/ whole':>8} {'µs/token':>9} {'first ms':>9}")
    for name, samples in times.items():
        ends = sorted(end for _, end in samples)
        p50, p99 = statistics.median(ends), ends[int(len(ends) * 0.99)]
        first = statistics.median(f for f, _ in samples)
        per_token_us = (p50 - base) / args.tokens * 1e6
        rows[name] = {
            "p50_ms": p50 * 1e3,
            "p99_ms": p99 * 1e3,
            "p50_ratio": p50 / base,
            "per_token_us": per_token_us,
            "first_part_p50_ms": first * 1e3,
        }
        print(
            f"{name:<20} {p50 * 1e3:8.3f} {p99 * 1e3:8.3f} {p50 / base:8.2f} "
            f"{per_token_us:9.1f} {first * 1e3:9.3f}"
        )
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"streaming-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"machine": info, "args": vars(args), "results": rows}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
