"""The instance's one invoke path (`container.invoke`) with toy runtimes: no process, no HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelhost.container.batching import Batcher
from modelhost.container.invoke import CUSTOM_ATTRIBUTES, Reply, ServedModel, invoke
from modelhost.frameworks.base import Context, Runtime
from modelhost.frameworks.errors import InferenceError
from tests.container.support import HandleRuntime


class SumRuntime(Runtime):
    """Answers each row's sum; row-independent, so it may batch."""

    name: ClassVar[str] = "sum"
    inline_max_bytes: ClassVar[int] = 1024
    can_batch: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []
        self.calls = 0

    def load(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def predict(self, data: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        self.calls += 1
        return np.asarray(data).sum(axis=1)

    def batch_rows(self, data: Any) -> int:
        return len(data)


class ScriptLikeRuntime(HandleRuntime):
    """Reads the context, as a user script does: echoes a header and custom attributes."""

    name: ClassVar[str] = "script-like"

    def handle(
        self, body: bytes, content_type: str | None, accept: str | None, context: Context
    ) -> tuple[bytes, str]:
        if body == b"fail":
            raise ZeroDivisionError("division by zero")
        context.set_response_custom_attributes(f"seen={context.custom_attributes}")
        answer = f"{context.model_dir}|{context.get_request_header('x-trace')}|{body.decode()}"
        return answer.encode(), "text/plain"


def run(model: ServedModel, body: bytes, headers: dict[str, str], executor: Any) -> Reply:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return asyncio.run(invoke(model, body, raw, executor))


def test_decode_predict_encode_inline(executor: Any) -> None:
    runtime = SumRuntime()
    reply = run(ServedModel(runtime, "/m"), b"1,2\n3,4\n", {"Content-Type": "text/csv"}, executor)
    assert (reply.status, reply.content_type) == (200, b"application/json")
    assert json.loads(reply.body) == [3.0, 7.0]
    assert runtime.threads == [threading.current_thread().name]  # small body: on the loop
    assert reply.headers == []


def test_a_large_body_runs_in_the_worker_thread(executor: Any) -> None:
    runtime = SumRuntime()
    body = b"1,2\n" * 400  # over inline_max_bytes
    reply = run(ServedModel(runtime, "/m"), body, {"Content-Type": "text/csv"}, executor)
    assert reply.status == 200
    assert runtime.threads[0].startswith("predict")


def test_request_errors_keep_their_status(executor: Any) -> None:
    model = ServedModel(SumRuntime(), "/m")
    assert run(model, b"1,2", {"Content-Type": "image/png"}, executor).status == 415
    assert run(model, b"1,2", {"Content-Type": "text/csv", "Accept": "x/y"}, executor).status == 406
    empty = run(model, b"", {"Content-Type": "text/csv"}, executor)
    assert empty.status == 400 and empty.content_type.startswith(b"text/plain")


def test_user_errors_are_500_with_the_traceback(executor: Any) -> None:
    reply = run(ServedModel(ScriptLikeRuntime(), "/m"), b"fail", {}, executor)
    assert reply.status == 500
    assert reply.body.startswith(b"ZeroDivisionError: division by zero\nTraceback")


def test_context_carries_model_dir_headers_and_custom_attributes(executor: Any) -> None:
    headers = {"X-Trace": "t1", "X-Amzn-SageMaker-Custom-Attributes": "a=1"}
    reply = run(ServedModel(ScriptLikeRuntime(), "/models/CA"), b"hi", headers, executor)
    assert (reply.status, reply.body) == (200, b"/models/CA|t1|hi")
    assert reply.headers == [(CUSTOM_ATTRIBUTES, b"seen=a=1")]


def test_batched_requests_share_a_predict_call(executor: Any) -> None:
    runtime = SumRuntime()
    model = ServedModel(runtime, "/m", Batcher(runtime, max_rows=64, max_wait_s=0.0))

    async def many() -> list[Reply]:
        raw = [(b"content-type", b"text/csv")]
        bodies = [f"{i},1\n".encode() for i in range(8)]
        return await asyncio.gather(*(invoke(model, b, raw, executor) for b in bodies))

    replies = asyncio.run(many())
    assert [r.status for r in replies] == [200] * 8
    assert runtime.calls == 1  # eight requests, one merged predict
    assert [json.loads(r.body) for r in replies] == [[float(i + 1)] for i in range(8)]


def test_an_expensive_inline_model_moves_to_the_thread() -> None:
    model = ServedModel(SumRuntime(), "/m")
    for _ in range(2):
        model.observe_inline(100, 0.01)
    assert model.inline_max_bytes == 1024  # two slow calls: maybe a GC pause
    model.observe_inline(100, 0.0001)
    model.observe_inline(100, 0.01)
    model.observe_inline(100, 0.01)
    assert model.inline_max_bytes == 1024  # a fast call in between resets the count
    model.observe_inline(100, 0.01)
    assert model.inline_max_bytes == 99


def test_our_errors_are_not_given_a_traceback(executor: Any) -> None:
    class Refusing(SumRuntime):
        def validate(self, data: Any) -> None:
            raise InferenceError("wrong feature count")

    reply = run(ServedModel(Refusing(), "/m"), b"1,2", {"Content-Type": "text/csv"}, executor)
    assert reply.body == b"wrong feature count"


def test_inline_calls_are_timed_on_a_sample_and_all_once_one_was_slow() -> None:
    from modelhost.container.invoke import INLINE_SAMPLE

    model = ServedModel(SumRuntime(), "/m")
    timed = [model.times_inline() for _ in range(2 * INLINE_SAMPLE)]
    assert timed.count(True) == 2 and timed[0]  # the first call, then one in INLINE_SAMPLE
    model.observe_inline(100, 0.01)  # a slow one: the next calls are all timed
    assert all(model.times_inline() for _ in range(3))
    model.observe_inline(100, 0.0001)
    assert not all(model.times_inline() for _ in range(INLINE_SAMPLE))
