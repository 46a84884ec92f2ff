"""The ASGI app in-process: routes, states and the error-status table."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.container.app import InstanceApp, ModelState, error_response
from modelhost.container.config import InstanceConfig
from tests.container.instance_support import N_FEATURES, write_booster
from tests.container.support import Response, asgi_request, loaded_app


def call(app: InstanceApp, *request: Any, **options: Any) -> Response:
    """`asgi_request` (method, path, body, headers, chunks) from synchronous code."""
    return asyncio.run(asgi_request(app, *request, **options))


def make_app(model_dir: Path, **config: Any) -> InstanceApp:
    return InstanceApp(InstanceConfig(model_dir=model_dir, **config))


@pytest.fixture()
def app(tmp_path: Path, trained: tuple[Any, np.ndarray]) -> Iterator[InstanceApp]:
    instance = loaded_app(write_booster(tmp_path / "model", trained[0]))
    yield instance
    instance.close()


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()


def test_ping_states(tmp_path: Path, trained: tuple[Any, np.ndarray]) -> None:
    instance = make_app(write_booster(tmp_path / "model", trained[0]))
    try:
        status, headers, body = call(instance, "GET", "/ping")
        assert status == 503 and json.loads(body) == {"status": "Loading"}
        status, _, body = call(
            instance, "POST", "/invocations", b"1,2,3,4", {"content-type": "text/csv"}
        )
        assert status == 503
        instance._load()
        status, headers, body = call(instance, "GET", "/ping")
        assert status == 200 and json.loads(body) == {"status": "Healthy"}
        assert headers["content-type"] == "application/json"
    finally:
        instance.close()


def test_failed_load_reports_reason(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "a.txt").write_text("x")
    instance = make_app(model_dir, runtime="xgboost")
    try:
        instance._load()
        status, _, body = call(instance, "GET", "/ping")
        assert status == 500
        assert json.loads(body) == {
            "status": "Failed",
            "reason": f"No model file found in {model_dir}: expected 'xgboost-model' or a "
            "*.json/*.ubj file for the xgboost runtime; files present: a.txt",
        }
        status, _, body = call(instance, "POST", "/invocations", b"1", {"content-type": "text/csv"})
        assert status == 500 and body.startswith(b"Model failed to load: No model file found")
    finally:
        instance.close()


def test_predictions_inline_and_in_thread(
    app: InstanceApp, trained: tuple[Any, np.ndarray]
) -> None:
    booster, rows = trained
    status, headers, body = call(
        app, "POST", "/invocations", _csv(rows[:1]), {"content-type": "text/csv"}
    )
    assert status == 200 and headers["content-type"] == "text/csv"
    assert float(body) == pytest.approx(float(booster.inplace_predict(rows[:1])[0]), abs=1e-6)
    # Over inline_max_bytes: goes through the worker thread, in several body chunks.
    big = np.tile(rows, (600, 1))
    assert len(_csv(big)) > 64 * 1024
    status, _, body = call(
        app, "POST", "/invocations", _csv(big), {"content-type": "text/csv"}, chunks=5
    )
    assert status == 200
    np.testing.assert_allclose(
        np.array(body.split(b","), dtype=np.float64), booster.inplace_predict(big), atol=1e-6
    )


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"1,2,3,4", {"content-type": "image/png"}, 415, "Unsupported Content-Type 'image/png'"),
        (b"1,2,x,4", {"content-type": "text/csv"}, 415, "Malformed CSV: row 1, field 3"),
        (
            b"1,2,3,4",
            {"content-type": "text/csv", "accept": "image/png"},
            406,
            "Unsupported Accept 'image/png'",
        ),
        (
            b"1,2,3",
            {"content-type": "text/csv"},
            400,
            f"Feature count mismatch: the model expects {N_FEATURES} features, row 1 has 3",
        ),
        (b"", {"content-type": "text/csv"}, 400, "Empty request body"),
    ],
)
def test_error_statuses(
    app: InstanceApp, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    got_status, got_headers, got_body = call(app, "POST", "/invocations", body, headers)
    assert got_status == status
    assert got_headers["content-type"] == "text/plain; charset=utf-8"
    assert got_body.decode().startswith(message)
    assert b"\n" not in got_body  # one line for our own errors


def test_custom_attributes_not_echoed_by_default(app: InstanceApp) -> None:
    _, headers, _ = call(
        app,
        "POST",
        "/invocations",
        b"1,2,3,4",
        {"content-type": "text/csv", "x-amzn-sagemaker-custom-attributes": "a=b"},
    )
    assert "x-amzn-sagemaker-custom-attributes" not in headers


def test_other_routes(app: InstanceApp) -> None:
    status, headers, body = call(app, "GET", "/execution-parameters")
    params = json.loads(body)
    assert status == 200 and params["BatchStrategy"] == "MULTI_RECORD"
    assert params["MaxPayloadInMB"] == 6 and params["MaxConcurrentTransforms"] >= 1
    assert call(app, "GET", "/nope")[0] == 404
    status, headers, _ = call(app, "GET", "/invocations")
    assert status == 405 and headers["allow"] == "POST"


def test_error_response_mapping() -> None:
    class ToolkitError(Exception):
        def __init__(self, status_code: int, message: str) -> None:
            super().__init__(message)
            self.status_code = status_code
            self.message = message

    def raised(exc: Exception) -> Exception:
        try:
            raise exc
        except Exception as caught:
            return caught

    status, text = error_response(raised(ToolkitError(422, "bad id")))
    assert status == 422 and text.startswith("bad id\nTraceback")
    status, text = error_response(raised(ZeroDivisionError("division by zero")))
    assert status == 500 and text.startswith("ZeroDivisionError: division by zero\nTraceback")
    status, _ = error_response(raised(ToolkitError(200, "not an error status")))
    assert status == 500


def test_expensive_inline_model_moves_to_the_worker_thread(tmp_path: Path) -> None:
    import threading
    import time

    from modelhost.container.invoke import ServedModel

    threads: list[str] = []

    class SlowRuntime:
        name = "slow"
        inline_max_bytes = 1000
        can_batch = False

        def handle(self, body: bytes, *_: Any) -> tuple[bytes, str]:
            threads.append(threading.current_thread().name)
            started = time.thread_time()
            while time.thread_time() - started < 0.003:  # burn CPU past the budget
                pass
            return b"ok", "text/plain"

    instance = make_app(tmp_path)
    instance.model = ServedModel(SlowRuntime(), str(tmp_path))  # type: ignore[arg-type]
    instance.state = ModelState.READY
    try:
        for _ in range(4):
            assert call(instance, "POST", "/invocations", b"x" * 10)[0] == 200
        assert instance.model.inline_max_bytes < 10
        main = threading.main_thread().name
        assert threads[:3] == [main] * 3
        assert threads[3].startswith("predict")
    finally:
        instance.close()
