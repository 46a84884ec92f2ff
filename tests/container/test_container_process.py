"""A real `python -m modelhost.container` process on loopback."""

from __future__ import annotations

import http.client
import io
import json
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.container.instance_support import N_FEATURES, Instance, write_booster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SCRIPT = """
import os
import time


class ToolkitError(Exception):
    def __init__(self, status_code, message, phrase=""):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def model_fn(model_dir):
    time.sleep(float(os.environ.get("TEST_LOAD_DELAY_S", "0")))
    return {}


def transform_fn(model, data, content_type, accept, context):
    if data == "boom":
        raise RuntimeError("kaboom")
    if data == "teapot":
        raise ToolkitError(418, "short and stout")
    if data.startswith("sleep"):
        time.sleep(float(data.split()[1]))
    context.response_custom_attributes = "seen=" + str(context.custom_attributes)
    return data.upper(), "text/plain"
"""


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()


def _script_dir(root: Path, source: str = SCRIPT) -> Path:
    code = root / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(textwrap.dedent(source))
    return root


@pytest.fixture(scope="module")
def xgb_instance(
    tmp_path_factory: pytest.TempPathFactory, trained: tuple[Any, np.ndarray]
) -> Iterator[Instance]:
    model_dir = write_booster(tmp_path_factory.mktemp("xgb") / "model", trained[0])
    with Instance(model_dir) as instance:
        status, body = instance.wait_ping()
        assert status == 200, instance.log()
        assert body == {"status": "Healthy"}
        yield instance


def test_csv_predictions_match_in_process(
    xgb_instance: Instance, trained: tuple[Any, np.ndarray]
) -> None:
    booster, rows = trained
    expected = booster.inplace_predict(rows)
    # One keep-alive connection for every row, as the gateway uses it.
    conn = http.client.HTTPConnection("127.0.0.1", xgb_instance.port, timeout=10)
    try:
        for i in range(len(rows)):
            conn.request(
                "POST", "/invocations", _csv(rows[i : i + 1]), {"Content-Type": "text/csv"}
            )
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Content-Type") == "text/csv"
            assert float(response.read()) == pytest.approx(float(expected[i]), abs=1e-6)
    finally:
        conn.close()
    status, _, body = xgb_instance.invoke(_csv(rows), "text/csv")
    assert status == 200
    np.testing.assert_allclose(np.array(body.split(b","), dtype=np.float64), expected, atol=1e-6)


def test_json_jsonlines_npy(xgb_instance: Instance, trained: tuple[Any, np.ndarray]) -> None:
    booster, rows = trained
    expected = booster.inplace_predict(rows[:3])
    status, headers, body = xgb_instance.invoke(
        json.dumps({"instances": rows[:3].tolist()}).encode(),
        "application/json",
        "application/json",
    )
    assert status == 200 and headers["content-type"] == "application/json"
    scores = [p["score"] for p in json.loads(body)["predictions"]]
    np.testing.assert_allclose(scores, expected, atol=1e-6)

    lines = "\n".join(json.dumps(r) for r in rows[:3].tolist()).encode()
    status, _, body = xgb_instance.invoke(lines, "application/jsonlines", "application/jsonlines")
    assert status == 200
    np.testing.assert_allclose(
        [json.loads(line)["score"] for line in body.splitlines()], expected, atol=1e-6
    )

    buffer = io.BytesIO()
    np.save(buffer, rows[:3])
    status, headers, body = xgb_instance.invoke(
        buffer.getvalue(), "application/x-npy", "application/x-npy"
    )
    assert status == 200 and headers["content-type"] == "application/x-npy"
    np.testing.assert_allclose(np.load(io.BytesIO(body)), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        (
            b"1,2,3,4",
            "image/png",
            None,
            415,
            "Unsupported Content-Type 'image/png': use one of text/csv, text/libsvm, "
            "application/json, application/jsonlines, application/x-npy, "
            "application/x-recordio-protobuf",
        ),
        (
            b"1,2,3,4",
            "text/csv",
            "image/png",
            406,
            "Unsupported Accept 'image/png': use one of text/csv, application/json, "
            "application/jsonlines, application/x-npy",
        ),
        (
            b"1,2,3",
            "text/csv",
            None,
            400,
            f"Feature count mismatch: the model expects {N_FEATURES} features, row 1 has 3",
        ),
        (b"1,2,3,4\n1,2", "text/csv", None, 415, "Malformed CSV: row 2 has 2 fields, row 1 has 4"),
        (b"", "text/csv", None, 400, "Empty request body: send at least one record"),
    ],
)
def test_error_statuses(
    xgb_instance: Instance,
    body: bytes,
    content_type: str,
    accept: str | None,
    status: int,
    message: str,
) -> None:
    got_status, headers, got_body = xgb_instance.invoke(body, content_type, accept)
    assert (got_status, got_body.decode()) == (status, message)
    assert headers["content-type"] == "text/plain; charset=utf-8"


def test_execution_parameters(xgb_instance: Instance) -> None:
    status, _, body = xgb_instance.request("GET", "/execution-parameters")
    params = json.loads(body)
    assert status == 200
    assert params["BatchStrategy"] == "MULTI_RECORD" and params["MaxPayloadInMB"] == 6


def test_script_mode_statuses_and_custom_attributes(tmp_path: Path) -> None:
    with Instance(_script_dir(tmp_path / "model")) as instance:
        assert instance.wait_ping()[0] == 200, instance.log()
        status, headers, body = instance.invoke(
            b"abc", "text/csv", None, **{"X-Amzn-SageMaker-Custom-Attributes": "trace=7"}
        )
        assert (status, body, headers["content-type"]) == (200, b"ABC", "text/plain")
        assert headers["x-amzn-sagemaker-custom-attributes"] == "seen=trace=7"

        status, _, body = instance.invoke(b"boom", "text/csv")
        text = body.decode()
        assert status == 500
        assert text.startswith("RuntimeError: kaboom\nTraceback") and "inference.py" in text

        status, _, body = instance.invoke(b"teapot", "text/csv")
        assert status == 418 and body.decode().startswith("short and stout\n")


def test_loading_then_ping_stays_responsive_during_long_invocation(tmp_path: Path) -> None:
    with Instance(_script_dir(tmp_path / "model"), env={"TEST_LOAD_DELAY_S": "1.5"}) as instance:
        instance.wait_listening()
        status, _, body = instance.request("GET", "/ping")
        assert status == 503 and json.loads(body) == {"status": "Loading"}
        assert instance.invoke(b"x", "text/csv")[0] == 503
        assert instance.wait_ping()[0] == 200

        result: dict[str, Any] = {}

        def slow() -> None:
            result["response"] = instance.invoke(b"sleep 3", "text/csv")

        worker = threading.Thread(target=slow)
        worker.start()
        time.sleep(0.3)
        status, _, _ = instance.request("GET", "/ping", timeout=2)
        assert status == 200
        assert worker.is_alive(), "the slow invocation should still be running"
        worker.join(10)
        assert result["response"][0] == 200


def test_broken_model_dir_reports_reason_and_stays_up(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "a.txt").write_text("not a model")
    with Instance(model_dir, env={"MH_INSTANCE_RUNTIME": "xgboost"}) as instance:
        status, body = instance.wait_ping()
        assert status == 500
        assert body == {
            "status": "Failed",
            "reason": f"No model file found in {model_dir}: expected 'xgboost-model' or a "
            "*.json/*.ubj file for the xgboost runtime; files present: a.txt",
        }
        assert instance.process.poll() is None


def test_script_import_error_reason(tmp_path: Path) -> None:
    model_dir = _script_dir(tmp_path / "model", "import os\nprint(undefined_thing)\n")
    with Instance(model_dir) as instance:
        status, body = instance.wait_ping()
        assert status == 500
        assert body["reason"] == (
            "code/inference.py failed to import: NameError: name 'undefined_thing' is not "
            "defined (line 2)"
        )


def test_exits_when_parent_dies(tmp_path: Path, trained: tuple[Any, np.ndarray]) -> None:
    parent = subprocess.Popen(["sleep", "60"])
    try:
        model_dir = write_booster(tmp_path / "model", trained[0])
        with Instance(model_dir, env={"MH_INSTANCE_PARENT_PID": str(parent.pid)}) as instance:
            assert instance.wait_ping()[0] == 200
            time.sleep(0.6)
            assert instance.process.poll() is None
            # Killed but not yet reaped: a zombie still answers kill(pid, 0).
            parent.kill()
            instance.process.wait(timeout=5)
            assert "parent process" in instance.log()
    finally:
        parent.kill()
        parent.wait()
