"""A user's own multi-model server (stdlib only) for tests: SageMaker's /models API.

It holds at most MAX_MODELS models (env, default 2) and answers 507 when full instead of
evicting, as a simple server would; the platform has to unload for it. A "model" is a
folder with value.txt; invoking it answers that text. Started as `<python> this.py serve`.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

MAX_MODELS = int(os.environ.get("MAX_MODELS", "2"))
MODELS: dict[str, tuple[str, str]] = {}  # name -> (url, value)
PEAK = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(format % args + "\n")

    def _send(self, status: int, doc: object, content_type: str = "application/json") -> None:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _name(self) -> str:
        return unquote(self.path.split("?")[0].split("/")[2])

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(200, {"status": "Healthy"})
        elif self.path.startswith("/models/"):
            name = self._name()
            if name not in MODELS:
                self._send(404, {"message": f"{name} not loaded"})
            else:
                self._send(200, {"modelName": name, "modelUrl": MODELS[name][0]})
        elif self.path.startswith("/models"):
            models = [{"modelName": n, "modelUrl": u} for n, (u, _) in sorted(MODELS.items())]
            self._send(200, {"models": models, "peak": PEAK[0]})
        else:
            self._send(404, {"message": "no route"})

    def do_POST(self) -> None:
        body = self._body()
        if self.path == "/models":
            doc = json.loads(body)
            name, url = doc["model_name"], doc["url"]
            if name in MODELS:
                self._send(409, {"message": "already loaded"})
            elif len(MODELS) >= MAX_MODELS:
                self._send(507, {"message": "out of memory"})
            else:
                MODELS[name] = (url, (Path(url) / "value.txt").read_text().strip())
                PEAK[0] = max(PEAK[0], len(MODELS))
                self._send(200, {"status": "loaded"})
        elif self.path.endswith("/invoke"):
            name = self._name()
            if name not in MODELS:
                self._send(404, {"message": f"{name} not loaded"})
            else:
                self._send(200, MODELS[name][1].encode(), "text/plain")
        else:
            self._send(404, {"message": "no route"})

    def do_DELETE(self) -> None:
        name = self._name()
        if MODELS.pop(name, None) is None:
            self._send(404, {"message": f"{name} not loaded"})
        else:
            self._send(200, {"status": "unloaded"})


if __name__ == "__main__":
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
