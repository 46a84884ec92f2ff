"""Script mode's streaming convention: a handler that returns an iterator (a generator, sync
or async) answers with a `StreamedBody`; bodies, lists and arrays do not stream."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.errors import InferenceError
from modelhost.frameworks.base import Context, RuntimeOptions
from modelhost.frameworks.registry import select_runtime
from modelhost.frameworks.script import ScriptRuntime
from modelhost.frameworks.streaming import StreamedBody, is_stream


def _load(model_dir: Path, source: str) -> ScriptRuntime:
    code = model_dir / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(textwrap.dedent(source))
    runtime = select_runtime("auto", model_dir, RuntimeOptions())
    assert isinstance(runtime, ScriptRuntime)
    runtime.load(model_dir)
    return runtime


def _chunks(body: Any) -> list[bytes]:
    assert isinstance(body, StreamedBody)
    chunks = body.chunks
    if hasattr(chunks, "__anext__"):

        async def drain() -> list[Any]:
            return [item async for item in chunks]  # type: ignore[union-attr]

        return [body.chunk(item) for item in asyncio.run(drain())]
    return [body.chunk(item) for item in chunks]  # type: ignore[union-attr]


def test_a_predict_fn_that_yields_streams_its_chunks(tmp_path: Path) -> None:
    runtime = _load(
        tmp_path,
        """
        def model_fn(model_dir):
            return None

        def predict_fn(data, model):
            for word in str(data).split():
                yield word + " "
        """,
    )
    body, media = runtime.handle(b'"a b c"', "application/json", None, Context(str(tmp_path)))
    assert media == "application/json"  # the Accept default: no output_fn named one
    assert _chunks(body) == [b"a ", b"b ", b"c "]
    assert isinstance(body, StreamedBody)
    assert body.source == "predict_fn in code/inference.py"


def test_output_fn_may_wrap_the_stream_and_name_its_type(tmp_path: Path) -> None:
    runtime = _load(
        tmp_path,
        """
        import json

        def model_fn(model_dir):
            return None

        def input_fn(body, content_type):
            return body.decode()

        def predict_fn(text, model):
            return iter(text.split())

        async def _events(tokens):
            for token in tokens:
                yield "data: " + json.dumps({"token": token}) + "\\n\\n"

        def output_fn(tokens, accept):
            return _events(tokens), "text/event-stream"
        """,
    )
    body, media = runtime.handle(b"x y", "text/plain", None, Context(str(tmp_path)))
    assert media == "text/event-stream"
    assert _chunks(body) == [b'data: {"token": "x"}\n\n', b'data: {"token": "y"}\n\n']


def test_transform_fn_may_stream_and_whole_answers_stay_whole(tmp_path: Path) -> None:
    runtime = _load(
        tmp_path,
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            if data == b"whole":
                return b"all at once"
            return (part.encode() for part in ("p1", "p2"))
        """,
    )
    ctx = Context(str(tmp_path))
    body, _ = runtime.handle(b"stream", "application/octet-stream", None, ctx)
    assert _chunks(body) == [b"p1", b"p2"]
    whole, _ = runtime.handle(b"whole", "application/octet-stream", None, ctx)
    assert whole == b"all at once"


def test_a_chunk_that_is_not_bytes_or_str_is_named() -> None:
    body = StreamedBody(iter([1]), "output_fn in code/inference.py")
    with pytest.raises(InferenceError, match=r"output_fn in code/inference\.py yielded int"):
        body.chunk(1)
    assert body.chunk(bytearray(b"ab")) == b"ab"
    assert body.chunk("é") == "é".encode()


def test_only_iterators_stream() -> None:
    def gen() -> Any:
        yield b""

    async def agen() -> Any:
        yield b""

    async_gen = agen()
    assert is_stream(gen()) and is_stream(iter([b"a"])) and is_stream(async_gen)
    for whole in (b"a", "a", bytearray(b"a"), [b"a"], (b"a",), {"a": 1}, np.zeros(2)):
        assert not is_stream(whole)
    asyncio.run(async_gen.aclose())
