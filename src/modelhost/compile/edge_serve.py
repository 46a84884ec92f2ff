"""modelhost edge server: serves a compiled model with the Python standard library only.

Copied as `serve.py` into every edge package (`modelhost edge package`). It needs no
modelhost and no packages: `python3 -I -S serve.py --port 8080` on any Python >= 3.8.
It implements the SageMaker container contract (GET /ping, POST /invocations with
text/csv or application/json) over the shared library beside it (ctypes), and, with
`--capture-to URL`, keeps every request and answer on disk in SageMaker's data-capture
format and uploads the buffer to a modelhost gateway whenever it can reach it.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import hashlib
import hmac
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from array import array
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_BODY_BYTES = 6 * 1024 * 1024


class Model:
    """The compiled model: `predict(rows)` → one list of outputs per row."""

    def __init__(self, folder: str) -> None:
        with open(os.path.join(folder, "manifest.json")) as f:
            self.manifest = json.load(f)
        m = self.manifest
        self.num_feature = int(m["num_feature"])
        self.num_output = int(m["num_output"])
        self.typecode = "f" if m["input_dtype"] == "float32" else "d"
        self.cast32 = bool(m.get("cast_float32"))
        self.labels = m.get("classes") if m.get("output") == "labels" else None
        self.lib = _load_library(folder, m.get("library", "model.so"))
        self.leaf = "f" if self._text("get_leaf_output_type") == "float32" else "d"
        self.fn = self.lib.mh_predict_batch
        self.fn.restype = None
        self.fn.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int64,
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_void_p,
        ]

    def _text(self, name: str) -> str:
        fn = getattr(self.lib, name)
        fn.restype = ctypes.c_char_p
        value: bytes = fn()
        return value.decode()

    def predict(self, rows: list[list[float]]) -> list[Any]:
        for i, row in enumerate(rows, 1):
            if len(row) != self.num_feature:
                raise ValueError(
                    f"Feature count mismatch: the model expects {self.num_feature} features, "
                    f"row {i} has {len(row)}"
                )
        flat = [v for row in rows for v in row]
        if self.cast32:  # scikit-learn's trees compare float32 copies of the input
            flat = list(array("f", flat))
        x = array(self.typecode, flat)
        out = array(self.leaf, bytes(array(self.leaf, [0]).itemsize * len(rows) * self.num_output))
        if rows:
            x_ptr, _ = x.buffer_info()
            out_ptr, _ = out.buffer_info()
            self.fn(x_ptr, len(rows), self.num_feature, 0, out_ptr)
        k = self.num_output
        scores = [list(out[i * k : (i + 1) * k]) for i in range(len(rows))]
        if self.labels is not None:
            if k == 1:
                return [self.labels[1 if s[0] > 0.5 else 0] for s in scores]
            return [self.labels[max(range(k), key=s.__getitem__)] for s in scores]
        return [s[0] if k == 1 else s for s in scores]


def _load_library(folder: str, name: str) -> ctypes.CDLL:
    path = os.path.join(folder, name)
    try:
        return ctypes.CDLL(path)
    except OSError as exc:
        # Another CPU or C library than the compiling machine's: rebuild from the sources.
        src = os.path.join(folder, "src")
        if not os.path.isdir(src):
            raise
        sys.stderr.write(f"model.so does not load here ({exc}); rebuilding it from src/\n")
        rebuilt = os.path.join(folder, "model-local.so")
        sources = sorted(os.path.join(src, n) for n in os.listdir(src) if n.endswith(".c"))
        cc = os.environ.get("CC", "cc")
        subprocess.check_call(
            [cc, "-O2", "-fPIC", "-std=gnu99", "-shared", "-o", rebuilt, *sources, "-lm"]
        )
        return ctypes.CDLL(rebuilt)


def parse_rows(body: bytes, content_type: str) -> list[list[float]]:
    """Rows of floats from a CSV or JSON body (empty CSV fields and null are missing)."""
    text = body.decode("utf-8")
    if content_type.startswith("application/json") or text.lstrip()[:1] in ("[", "{"):
        doc = json.loads(text)
        if isinstance(doc, dict):
            doc = doc.get("instances", doc.get("inputs", doc.get("features", doc)))
        if isinstance(doc, list) and doc and not isinstance(doc[0], list):
            doc = [doc]
        if isinstance(doc, list) and doc and isinstance(doc[0], dict):
            doc = [d.get("features", d.get("data")) for d in doc]
        return [[math.nan if v is None else float(v) for v in row] for row in doc]
    rows = []
    for line in text.splitlines():
        if line.strip():
            rows.append([float(v) if v.strip() else math.nan for v in line.split(",")])
    return rows


def encode(predictions: list[Any], accept: str, labels: bool) -> tuple[bytes, str]:
    """(body, content type) as the modelhost runtime answers."""
    if accept.startswith("application/json"):
        if labels:
            return json.dumps(predictions).encode(), "application/json"
        doc = {"predictions": [{"score": p} for p in predictions]}
        return json.dumps(doc).encode(), "application/json"
    lines = [",".join(map(repr, p)) if isinstance(p, list) else str(p) for p in predictions]
    return ("\n".join(lines) + "\n").encode(), "text/csv"


class Capture:
    """Store-and-forward data capture: JSON Lines on disk, uploaded when the target answers."""

    def __init__(
        self,
        url: str,
        folder: str,
        interval_s: float,
        credentials: tuple[str, str] | None,
        region: str,
    ) -> None:
        self.url = url
        self.pending = os.path.join(folder, "pending")
        os.makedirs(self.pending, exist_ok=True)
        self.interval_s = interval_s
        self.credentials = credentials
        self.region = region
        self.lock = threading.Lock()
        self.lines: list[str] = []
        self.uploaded = 0

    def record(self, body: bytes, content_type: str, answer: bytes, answer_type: str) -> None:
        now = datetime.datetime.now(datetime.UTC)
        event = {
            "captureData": {
                "endpointInput": _capture_data("INPUT", body, content_type),
                "endpointOutput": _capture_data("OUTPUT", answer, answer_type),
            },
            "eventMetadata": {
                "eventId": str(uuid.uuid4()),
                "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
            "eventVersion": "0",
        }
        with self.lock:
            self.lines.append(json.dumps(event))

    def flush(self) -> None:
        """Move buffered records to a pending file (what survives a restart)."""
        with self.lock:
            lines, self.lines = self.lines, []
        if lines:
            name = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.jsonl"
            tmp = os.path.join(self.pending, "." + name)
            with open(tmp, "w") as f:
                f.write("\n".join(lines) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(self.pending, name))

    def upload_pending(self) -> str | None:
        """Upload pending files oldest first; stop at the first failure (retried later)."""
        for name in sorted(n for n in os.listdir(self.pending) if n.endswith(".jsonl")):
            path = os.path.join(self.pending, name)
            with open(path, "rb") as f:
                data = f.read()
            url = self.url.rstrip("/") + "?file=" + urllib.parse.quote(name)
            headers = {"content-type": "application/jsonlines"}
            if self.credentials:
                headers.update(sigv4(url, data, self.credentials, self.region))
            request = urllib.request.Request(url, data=data, method="POST", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as resp:
                    resp.read()
            except (urllib.error.URLError, OSError) as exc:
                return str(exc)
            os.remove(path)
            self.uploaded += data.count(b"\n")
        return None

    def run(self) -> None:
        delay = self.interval_s
        while True:
            time.sleep(delay)
            self.flush()
            problem = self.upload_pending()
            # Back off while the network is away, up to a minute; resume at once after.
            delay = self.interval_s if problem is None else min(60.0, delay * 2)


def _capture_data(mode: str, body: bytes, content_type: str) -> dict[str, str]:
    try:
        return {
            "observedContentType": content_type,
            "mode": mode,
            "data": body.decode("utf-8"),
            "encoding": "CSV" if "csv" in content_type else "JSON",
        }
    except UnicodeDecodeError:
        import base64

        return {
            "observedContentType": content_type,
            "mode": mode,
            "data": base64.b64encode(body).decode(),
            "encoding": "BASE64",
        }


def sigv4(
    url: str,
    body: bytes,
    credentials: tuple[str, str],
    region: str,
    service: str = "sagemaker",
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """AWS Signature Version 4 headers for a POST of `body` to `url` (as boto3 signs)."""
    key_id, secret = credentials
    parts = urllib.parse.urlsplit(url)
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    payload = hashlib.sha256(body).hexdigest()
    query = "&".join(
        sorted(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        )
    )
    canonical = "\n".join(
        [
            "POST",
            urllib.parse.quote(parts.path or "/", safe="/-_.~"),
            query,
            f"host:{parts.netloc}\nx-amz-content-sha256:{payload}\nx-amz-date:{stamp}\n",
            "host;x-amz-content-sha256;x-amz-date",
            payload,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": stamp,
        "x-amz-content-sha256": payload,
        "authorization": f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders=host;"
        f"x-amz-content-sha256;x-amz-date, Signature={signature}",
    }


class Handler(BaseHTTPRequestHandler):
    """GET /ping and POST /invocations, as a SageMaker inference container."""

    protocol_version = "HTTP/1.1"
    model: Model
    capture: Capture | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would cost more than the prediction

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(200, b"", "text/plain")
        else:
            self._send(404, b'{"message": "not found"}', "application/json")

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self._send(404, b'{"message": "not found"}', "application/json")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(413, b'{"message": "payload too large"}', "application/json")
            return
        body = self.rfile.read(length)
        content_type = (self.headers.get("Content-Type") or "text/csv").lower()
        model = self.model
        default = "application/json" if model.labels is not None else "text/csv"
        accept = (self.headers.get("Accept") or default).lower()
        if accept.startswith("*/*"):
            accept = default
        try:
            rows = parse_rows(body, content_type)
            answer, answer_type = encode(model.predict(rows), accept, model.labels is not None)
        except (ValueError, TypeError, KeyError) as exc:
            self._send(400, json.dumps({"message": str(exc)}).encode(), "application/json")
            return
        self._send(200, answer, answer_type)
        if self.capture is not None:
            self.capture.record(body, content_type, answer, answer_type)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", 8080))
    )
    parser.add_argument(
        "--capture-to", default=None, help="URL to upload data capture to (default: the manifest's)"
    )
    parser.add_argument("--capture-dir", default=os.path.join(HERE, "capture"))
    parser.add_argument("--capture-interval-s", type=float, default=5.0)
    args = parser.parse_args(argv)
    model = Model(HERE)
    Handler.model = model
    capture_to = args.capture_to or model.manifest.get("capture_to")
    if capture_to:
        key_id = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        credentials = (key_id, secret) if key_id and secret else None
        capture = Capture(
            capture_to, args.capture_dir, args.capture_interval_s, credentials, region
        )
        Handler.capture = capture
        threading.Thread(target=capture.run, daemon=True).start()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    sys.stderr.write(
        f"serving {model.manifest.get('model_digest') or 'the model'} on "
        f"{args.host}:{server.server_address[1]}\n"
    )
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if Handler.capture is not None:
            Handler.capture.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
