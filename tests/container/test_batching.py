"""Adaptive batching in the instance app: merged predicts answer exactly as unbatched ones.

Requests run concurrently on one event loop (as uvicorn runs them), so every request
started in the same loop turn lands in the same merged predict call.
"""

from __future__ import annotations

import asyncio
import io
import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.container.app import InstanceApp
from modelhost.container.config import ConfigError, InstanceConfig
from modelhost.errors import PredictionFailed
from tests.container.instance_support import write_booster
from tests.container.support import Response, asgi_request, invoke_all_batched, loaded_app

Request = tuple[bytes, dict[str, str]]


def concurrently(app: InstanceApp, requests: list[Request]) -> list[Response]:
    async def main() -> list[Response]:
        calls = (asgi_request(app, "POST", "/invocations", b, h) for b, h in requests)
        return list(await asyncio.gather(*calls))

    return asyncio.run(main())


@pytest.fixture()
def model_dir(tmp_path: Path, trained: tuple[Any, np.ndarray]) -> Path:
    return write_booster(tmp_path / "model", trained[0])


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()


def _npy(rows: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, rows)
    return buffer.getvalue()


def mixed_requests(rows: np.ndarray) -> list[Request]:
    csv = {"Content-Type": "text/csv"}
    return [
        (_csv(rows[:1]), csv),
        (_csv(rows[1:4]), csv),
        (_csv(rows[4:5]), {"Content-Type": "text/csv", "Accept": "application/json"}),
        (
            json.dumps({"instances": rows[5:7].tolist()}).encode(),
            {"Content-Type": "application/json"},
        ),
        (_npy(rows[7:8]), {"Content-Type": "application/x-npy", "Accept": "application/jsonlines"}),
        (_csv(rows[8:10]), {"Content-Type": "text/csv", "Accept": "text/csv"}),
        (b"1:0.5 3:-1.0", {"Content-Type": "text/libsvm"}),
    ]


def test_merged_answers_equal_unbatched(model_dir: Path, trained: tuple[Any, np.ndarray]) -> None:
    rows = trained[1]
    requests = mixed_requests(rows) * 3
    plain = loaded_app(model_dir, batching=False)
    batched = loaded_app(model_dir)
    try:
        assert plain.model is not None and batched.model is not None
        assert plain.model.batcher is None and batched.model.batcher is not None
        # The reference: each request alone, without the batcher.
        expected = [concurrently(plain, [request])[0] for request in requests]
        got = concurrently(batched, requests)
        assert got == expected
        assert all(status == 200 for status, _, _ in got)
        batcher = batched.model.batcher
        # Every row went through the batcher, in fewer predict calls than requests.
        assert batcher.batched_rows == (1 + 3 + 1 + 2 + 1 + 2 + 1) * 3
        assert batcher.calls < len(requests)
        assert batcher.largest > 1
    finally:
        plain.close()
        batched.close()


def test_invalid_request_fails_alone(model_dir: Path, trained: tuple[Any, np.ndarray]) -> None:
    rows = trained[1]
    app = loaded_app(model_dir)
    try:
        good = [(_csv(rows[i : i + 1]), {"Content-Type": "text/csv"}) for i in range(6)]
        bad: list[Request] = [
            (_csv(rows[:1, :2]), {"Content-Type": "text/csv"}),  # wrong feature count: 400
            (b"\x00\x01garbage", {"Content-Type": "application/x-npy"}),  # cannot decode: 415
            (_csv(rows[:1]), {"Content-Type": "text/csv", "Accept": "image/png"}),  # 406
            (b"a,b,c,d", {"Content-Type": "text/csv"}),  # not numbers: 415
        ]
        mixed = [good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3], bad[3], *good[4:]]
        got = concurrently(app, mixed)
        statuses = [status for status, _, _ in got]
        assert statuses == [200, 400, 200, 415, 200, 406, 200, 415, 200, 200]
        reference = loaded_app(model_dir, batching=False)
        try:
            for request, (status, _, body) in zip(mixed, got, strict=True):
                if status == 200:
                    assert body == concurrently(reference, [request])[0][2]
        finally:
            reference.close()
        assert b"Feature count mismatch" in got[1][2]
    finally:
        app.close()


def test_failed_merged_predict_is_isolated(
    model_dir: Path, trained: tuple[Any, np.ndarray]
) -> None:
    rows = trained[1]
    app = loaded_app(model_dir)
    assert app.runtime is not None
    real_predict = app.runtime.predict
    poison = 123.0

    def predict(data: Any) -> Any:
        # A model that rejects one particular row: the merged call fails as a whole.
        if (np.asarray(data)[:, 0] == poison).any():
            raise PredictionFailed("this row cannot be scored")
        return real_predict(data)

    app.runtime.predict = predict  # type: ignore[method-assign]
    try:
        bad_row = rows[:1].copy()
        bad_row[0, 0] = poison
        csv = {"Content-Type": "text/csv"}
        requests = [(_csv(rows[i : i + 1]), csv) for i in range(4)]
        requests.insert(2, (_csv(bad_row), csv))
        got = concurrently(app, requests)
        assert [s for s, _, _ in got] == [200, 200, PredictionFailed.status_code, 200, 200]
        assert b"cannot be scored" in got[2][2]
        reference = loaded_app(model_dir, batching=False)
        try:
            for request, response in zip(requests, got, strict=True):
                if response[0] == 200:
                    assert response == concurrently(reference, [request])[0]
        finally:
            reference.close()
    finally:
        app.close()


def test_max_rows_respected(model_dir: Path, trained: tuple[Any, np.ndarray]) -> None:
    rows = np.vstack([trained[1]] * 2)
    app = loaded_app(model_dir, batch_max_rows=5, batch_max_wait_s=10.0)
    reference = loaded_app(model_dir, batching=False)
    try:
        assert app.model is not None
        batcher = app.model.batcher
        assert batcher is not None
        sizes: list[int] = []
        original = app.runtime.predict  # type: ignore[union-attr]

        def predict(data: Any) -> Any:
            sizes.append(len(data))
            return original(data)

        app.runtime.predict = predict  # type: ignore[method-assign,union-attr]
        csv = {"Content-Type": "text/csv"}
        # 12 single rows, then 3 rows (joins the 2 queued: 5), then 7 rows (more than
        # max_rows: predicted alone), then 5 single rows. The 10 s max wait never
        # delays a batch that is full: each flushes as it reaches 5 rows.
        requests = [(_csv(rows[i : i + 1]), csv) for i in range(12)]
        requests += [(_csv(rows[12:15]), csv), (_csv(rows[:7]), csv)]
        requests += [(_csv(rows[i : i + 1]), csv) for i in range(5)]
        got = concurrently(app, requests)
        assert all(s == 200 for s, _, _ in got)
        assert sorted(sizes) == [5, 5, 5, 5, 7]
        assert batcher.largest == 5
        for request, response in zip(requests, got, strict=True):
            assert response == concurrently(reference, [request])[0]
    finally:
        app.close()
        reference.close()


def test_script_mode_never_batches(tmp_path: Path) -> None:
    code = tmp_path / "model" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(
        "def model_fn(model_dir):\n    return {}\n\n"
        "def transform_fn(model, data, content_type, accept):\n    return data, 'text/plain'\n"
    )
    app = loaded_app(tmp_path / "model", runtime="auto")
    try:
        assert app.model is not None and app.model.batcher is None
        got = concurrently(app, [(b"x", {"Content-Type": "text/plain"})] * 3)
        assert [s for s, _, _ in got] == [200, 200, 200]
    finally:
        app.close()


def test_batching_settings_from_env() -> None:
    config = InstanceConfig.from_env(
        {
            "MH_INSTANCE_BATCHING": "off",
            "MH_INSTANCE_BATCH_MAX_ROWS": "16",
            "MH_INSTANCE_BATCH_MAX_WAIT_MS": "1.5",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        }
    )
    assert (config.batching, config.batch_max_rows, config.workers) == (False, 16, 2)
    assert config.batch_max_wait_s == pytest.approx(0.0015)
    defaults = InstanceConfig.from_env({})
    assert defaults.batching is True and defaults.batch_max_rows == 64
    assert defaults.batch_max_wait_s == 0 and defaults.workers == 1
    for name, value in [
        ("MH_INSTANCE_BATCHING", "maybe"),
        ("MH_INSTANCE_BATCH_MAX_ROWS", "0"),
        ("MH_INSTANCE_BATCH_MAX_WAIT_MS", "-1"),
        ("MH_INSTANCE_BATCH_MAX_WAIT_MS", "nan"),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "0"),
    ]:
        with pytest.raises(ConfigError, match=name):
            InstanceConfig.from_env({name: value})


def test_the_servers_callback_path_answers_as_each_request_alone(
    model_dir: Path, trained: tuple[Any, np.ndarray]
) -> None:
    """`invoke_batched` (the instance's HTTP server: no task per request, the merged
    predict calls back) gives every request the answer it gets alone; errors stay with
    their request."""
    rows = trained[1]
    csv = {"Content-Type": "text/csv"}
    requests = [*mixed_requests(rows), (_csv(rows[:1, :2]), csv), (_csv(rows[:7]), csv)]
    requests.insert(3, (b"a,b", csv))
    app = loaded_app(model_dir, batch_max_rows=5)
    reference = loaded_app(model_dir, batching=False)
    assert app.model is not None and app.model.batcher is not None

    try:
        got = invoke_all_batched(app.model, requests)
        for i, request in enumerate(requests):
            status, headers, body = concurrently(reference, [request])[0]
            assert (got[i].status, got[i].body) == (status, body), request
            assert got[i].content_type.decode() == headers["content-type"]
        assert [got[i].status for i in (3, len(requests) - 2)] == [415, 400]
        assert app.model.batcher.calls < len(requests)
    finally:
        app.close()
        reference.close()


def test_a_failing_callback_leaves_the_rest_of_its_batch_answered(
    model_dir: Path, trained: tuple[Any, np.ndarray]
) -> None:
    app = loaded_app(model_dir)
    assert app.runtime is not None and app.model is not None
    batcher = app.model.batcher
    assert batcher is not None
    rows = trained[1].astype(np.float32)
    got: list[tuple[int, Any, BaseException | None]] = []

    def done(i: int, prediction: Any, error: BaseException | None) -> None:
        if i == 1:
            raise RuntimeError("the connection of this request broke")
        got.append((i, prediction, error))

    async def main() -> None:
        for i in range(4):
            batcher.submit(rows[i : i + 1], 1, partial(done, i))
        while len(got) < 3:
            await asyncio.sleep(0)
        # Shutdown fails what is still queued, through the same callbacks.
        batcher.submit(rows[:1], 1, partial(done, 9))
        batcher.close()

    try:
        asyncio.run(main())
        assert [i for i, _, _ in got] == [0, 2, 3, 9]
        for i, prediction, error in got[:3]:
            assert error is None
            assert prediction.tolist() == app.runtime.predict(rows[i : i + 1]).tolist()
        assert isinstance(got[3][2], RuntimeError) and got[3][1] is None
    finally:
        app.close()
