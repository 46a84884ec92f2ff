"""A user's own server (`command:` image) in batch, and ModelClientConfig's timeout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.support import transform
from tests.support import unique

pytestmark = pytest.mark.integration

SERVER = """
import os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def _answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._answer(200 if self.path == "/ping" else 404, b"ok")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if b"slow" in body:
            time.sleep(3)
        out = [str(2 * int(x)).encode() for x in body.split() if x != b"slow"]
        self._answer(200, b"\\n".join(out) + b"\\n")

    def log_message(self, *args):
        pass

port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def test_user_server_in_batch_and_invocation_timeout(sm: Any, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "server.py").write_text(SERVER)
    model = unique("byoc-batch")
    sm.create_model(
        ModelName=model,
        PrimaryContainer={
            "Image": f"command:{sys.executable} server.py",
            "ModelDataUrl": str(model_dir),
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.txt").write_text("\n".join(str(i) for i in range(100)) + "\n")
    (tmp_path / "in" / "slow.txt").write_text("1\n2\nslow\n4\n")
    d = transform(
        sm,
        model,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        content_type="text/plain",
        BatchStrategy="SingleRecord",
        ModelClientConfig={"InvocationsTimeoutInSeconds": 1, "InvocationsMaxRetries": 0},
    )
    assert d["TransformJobStatus"] == "Failed"
    reason = d["FailureReason"]
    assert "slow.txt: records 3-3" in reason and "InvocationsTimeoutInSeconds (1 s)" in reason
    out = (tmp_path / "out" / "good.txt.out").read_text().split()
    assert out == [str(2 * i) for i in range(100)]
    assert not (tmp_path / "out" / "slow.txt.out").exists()
