"""A user's model server (BYOC) that streams its answers, for the streaming tests.

Run by the instance supervisor as `python streaming_server.py serve` on
SAGEMAKER_BIND_TO_PORT. `POST /invocations` with a body of

- `stream <token>`: chunked: `part-0 `, `part-1 `, then waits until the file
  `$RELEASE_DIR/<token>` exists (the test creates it once it has read the first part) and
  sends `released` (`not-released` after 60 s without it);
- `break`: chunked: `part-0 `, then closes the connection mid-answer;
- `fail`: chunked: `part-0 `, then ends the answer with modelhost's error trailer
  (`X-Modelhost-Stream-Error: out of tokens`), as a user's server may to name the cause;
- `whole`: a Content-Length answer `all at once`;
- `error`: 400 `bad input`;
- `forever <token>`: chunked: `tick ` every 20 ms without end; once a write fails (the
  gateway closed the connection) it creates `$RELEASE_DIR/<token>`.

Standard library only: the instance runs it with whatever Python it finds.
"""

from __future__ import annotations

import os
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _plain(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self) -> None:
        self._plain(200, b"ok")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        if body == "whole":
            self._plain(200, b"all at once")
            return
        if body == "error":
            self._plain(400, b"bad input")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        if body == "fail":
            self.send_header("Trailer", "X-Modelhost-Stream-Error")
        self.end_headers()
        if body.startswith("forever "):
            self._forever(Path(os.environ["RELEASE_DIR"]) / body.split()[-1])
            return
        self._chunk(b"part-0 ")
        if body == "fail":
            self.wfile.write(b"0\r\nX-Modelhost-Stream-Error: out of tokens%21\r\n\r\n")
            return
        if body == "break":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._chunk(b"part-1 ")
        release = Path(os.environ["RELEASE_DIR"]) / body.split()[-1]
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._chunk(b"released" if release.exists() else b"not-released")
        self._chunk(b"")

    def _forever(self, stopped: Path) -> None:
        try:
            while True:
                self._chunk(b"tick ")
                time.sleep(0.02)
        except OSError:  # the connection is gone
            self.close_connection = True
            stopped.touch()


if __name__ == "__main__":
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
