"""LightGBM requests merged by the instance: every answer is the one the request gets alone.

In process, no HTTP server: a single-model instance app (its `Batcher`, through the ASGI
path and the HTTP server's callback path) and a multi-model host (its per-turn
`TickInvoker`, as the HTTP server offers requests), each with real LightGBM models of
several kinds, mixed content types, float32 and integer NPY bodies, and requests that
fail (wrong width, undecodable, bad Accept) among the good ones.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.container.multimodel_support import (
    call,
    invoke_request,
    multimodel_host,
    offer_together,
)
from tests.container.support import asgi_request, invoke_all_batched, loaded_app
from tests.lgb_support import N_FEATURES, lgb_data, train_boosters, write_model_dir

Request = tuple[bytes, dict[str, str]]
CSV = {"Content-Type": "text/csv"}


@pytest.fixture(scope="module")
def boosters() -> dict[str, Any]:
    return train_boosters()


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(
        ",".join("" if np.isnan(v) else repr(float(v)) for v in r) for r in rows
    ).encode()


def _npy(rows: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, rows)
    return buffer.getvalue()


def _requests(rows: np.ndarray) -> tuple[list[Request], list[int]]:
    """Good and bad requests interleaved, and the statuses each gets."""
    clean = np.nan_to_num(rows)
    good: list[Request] = [
        (_csv(rows[:1]), CSV),
        (_csv(rows[1:4]), {**CSV, "Accept": "application/json"}),
        (
            json.dumps({"instances": clean[4:6].tolist()}).encode(),
            {"Content-Type": "application/json"},
        ),
        (_npy(rows[6:7].astype(np.float32)), {"Content-Type": "application/x-npy"}),
        (_npy(np.round(clean[7:9]).astype(np.int64)), {"Content-Type": "application/x-npy"}),
        (b"1:0.5 3:-1.0 9:2", {"Content-Type": "text/libsvm", "Accept": "application/jsonlines"}),
        (_csv(rows[9:10]), {**CSV, "Accept": "application/x-npy"}),
    ]
    bad: list[tuple[Request, int]] = [
        ((_csv(rows[:1, :2]), CSV), 400),  # two features
        ((b"\x00\x01garbage", {"Content-Type": "application/x-npy"}), 415),
        ((_csv(rows[:1]), {**CSV, "Accept": "image/png"}), 406),
        ((b"a,b,c", CSV), 415),
    ]
    requests, statuses = [], []
    for i, request in enumerate(good * 2):
        requests.append(request)
        statuses.append(200)
        if i % 3 == 1 and bad:
            request, status = bad.pop()
            requests.append(request)
            statuses.append(status)
    return requests, statuses


def _concurrently(app: Any, requests: list[Request]) -> list[tuple[int, dict[str, str], bytes]]:
    async def main() -> list[tuple[int, dict[str, str], bytes]]:
        calls = (asgi_request(app, "POST", "/invocations", b, h) for b, h in requests)
        return list(await asyncio.gather(*calls))

    return asyncio.run(main())


@pytest.mark.parametrize("kind", ["binary", "multiclass", "categorical", "linear_tree"])
def test_single_model_merged_answers_equal_each_request_alone(
    boosters: dict[str, Any], kind: str, tmp_path: Path
) -> None:
    model_dir = write_model_dir(tmp_path / kind, boosters[kind])
    requests, statuses = _requests(lgb_data(12, seed=3))
    batched, plain = loaded_app(model_dir), loaded_app(model_dir, batching=False)
    try:
        assert batched.model is not None and batched.model.batcher is not None
        got = _concurrently(batched, requests)
        assert [status for status, _, _ in got] == statuses
        for request, answer in zip(requests, got, strict=True):
            assert answer == _concurrently(plain, [request])[0], request
        batcher = batched.model.batcher
        # Every good request but the integer one (predicted alone) went through the
        # batcher, in fewer calls than requests.
        assert batcher.batched_rows == 2 * (1 + 3 + 2 + 1 + 1 + 1)
        assert batcher.largest > 1 and batcher.calls < statuses.count(200)
    finally:
        batched.close()
        plain.close()


def test_the_servers_callback_path(boosters: dict[str, Any], tmp_path: Path) -> None:
    """`invoke_batched`, as the instance's HTTP server calls it (no task per request)."""
    model_dir = write_model_dir(tmp_path, boosters["multiclass"])
    requests, statuses = _requests(lgb_data(12, seed=4))
    app, plain = loaded_app(model_dir), loaded_app(model_dir, batching=False)
    assert app.model is not None

    try:
        got = invoke_all_batched(app.model, requests)
        assert [got[i].status for i in range(len(requests))] == statuses
        for i, request in enumerate(requests):
            status, headers, body = _concurrently(plain, [request])[0]
            assert (got[i].status, got[i].body) == (status, body), request
            assert got[i].content_type.decode() == headers["content-type"]
        assert app.model.batcher is not None and app.model.batcher.largest > 1
    finally:
        app.close()
        plain.close()


def test_multi_model_requests_merge_per_model_and_fail_alone(
    boosters: dict[str, Any], tmp_path: Path
) -> None:
    """Two LightGBM models in one multi-model instance, offered in one loop turn."""
    kinds = ("multiclass", "linear_tree")
    dirs = {kind: write_model_dir(tmp_path / kind, boosters[kind]) for kind in kinds}
    rows = lgb_data(6, seed=5)
    host = multimodel_host(tmp_path)
    try:

        async def load() -> None:
            for kind, path in dirs.items():
                doc = json.dumps({"model_name": kind, "url": str(path)}).encode()
                status, body = await call(host, "/models", doc)
                assert status == 200, body

        asyncio.run(load())
        requests, names = [], []
        for i in range(6):
            for kind in kinds:
                requests.append(invoke_request(kind, _csv(rows[i : i + 1])))
                names.append(kind)
        requests.insert(3, invoke_request("linear_tree", b"1,2,3\n"))
        names.insert(3, "bad")
        offered = offer_together(host, requests)
        alone = {kind: loaded_app(path, batching=False) for kind, path in dirs.items()}
        try:
            for request, name, (taken, connection) in zip(requests, names, offered, strict=True):
                assert taken
                [reply] = connection.replies
                if name == "bad":
                    assert reply.status == 400 and f"expects {N_FEATURES}".encode() in reply.body
                    continue
                want = _concurrently(alone[name], [(request.body, CSV)])[0]
                assert (reply.status, reply.body) == (want[0], want[2])
        finally:
            for app in alone.values():
                app.close()
        # Two models, six good requests each: one predict call per model.
        assert (host.tick.calls, host.tick.predicted_rows, host.tick.largest) == (2, 12, 6)
    finally:
        host.close()
