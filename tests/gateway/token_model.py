"""A toy token streamer in script mode, for the streaming tests: what a user writing an LLM
server's `predict_fn` would do, without the model.

`predict_fn` yields the request text's words one at a time (`"word "`), except that

- `wait:<path>` blocks until the file `<path>` exists (the test creates it once it has read
  the parts before it) and yields `released ` (`not-released ` after 60 s without it), so a
  test can tell a relayed stream from a buffered one without timing anything;
- `fail` raises: as the first word, before anything was sent; later, mid-stream;
- `exit` ends the instance's process (`os._exit`), as a crash mid-stream would;
- `forever:<path>` yields `tick ` every 20 ms without end, and creates the file `<path>`
  once it is stopped (the generator closed: the client, or the gateway, went away).

A JSON body is a V2 generate request: its `text_input` is the text. `output_fn` names the
stream's content type. Every script-mode image runs it: `model_fn` loads nothing.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

SCRIPT = """
import json
import os
import time
from pathlib import Path


def model_fn(model_dir):
    return "tokens"


def input_fn(body, content_type):
    text = body.decode() if isinstance(body, (bytes, bytearray)) else body
    if content_type.startswith("application/json"):  # V2 generate: {"text_input": ...}
        return json.loads(text)["text_input"]
    return text


def predict_fn(text, model):
    for word in text.split():
        if word.startswith("wait:"):
            release = Path(word[len("wait:"):])
            deadline = time.monotonic() + 60
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            yield "released " if release.exists() else "not-released "
        elif word == "fail":
            raise ValueError("the token model failed")
        elif word == "exit":
            os._exit(3)
        elif word.startswith("forever:"):
            try:
                while True:
                    time.sleep(0.02)
                    yield "tick "
            finally:
                Path(word[len("forever:"):]).touch()
        else:
            yield word + " "


def output_fn(tokens, accept):
    return tokens, "text/plain; charset=utf-8"
"""


def write_token_model(root: Path) -> Path:
    """`root/model.tar.gz` holding code/inference.py (the streamer above)."""
    code = root / "model" / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "inference.py").write_text(SCRIPT)
    out = root / "model.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        tar.add(code, arcname="code")
    return out


def words(text: str) -> list[bytes]:
    """The parts the streamer answers `text` with (no `wait:` or `fail` in it)."""
    return [f"{word} ".encode() for word in text.split()]
