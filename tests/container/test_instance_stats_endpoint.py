"""`GET /modelhost/stats` of an instance, and the compiled tier's per-model states, without
processes: the app over ASGI, the tier's thread over prepared cache folders."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.container.batching import Batcher
from modelhost.container.compile_tier import CompileTier, TierConfig, model_digest
from modelhost.container.instance_stats import BatchTotals, multimodel_stats, tier_counts
from modelhost.frameworks.compiled import MARKER
from modelhost.frameworks.compiled_predictor import FAILED
from modelhost.store import cache_bound
from tests.container.instance_support import Instance, write_booster
from tests.container.support import asgi_request, loaded_app

REQUESTS = 20


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(str(v) for v in row) for row in rows).encode()


def _stats(app: Any) -> dict[str, Any]:
    status, _, body = asyncio.run(asgi_request(app, "GET", "/modelhost/stats"))
    assert status == 200
    doc: dict[str, Any] = json.loads(body)
    return doc


def test_stats_count_merged_calls_rows_and_requests_alone(
    tmp_path: Path, trained: tuple[Any, np.ndarray]
) -> None:
    app = loaded_app(write_booster(tmp_path / "model", trained[0]), batch_max_rows=4)
    rows = trained[1]
    headers = {"Content-Type": "text/csv"}
    try:
        assert _stats(app)["batching"] == {
            "batches": 0,
            "batchedRows": 0,
            "alone": 0,
            "largestRows": 0,
        }

        async def together() -> None:  # one loop turn: one merged call of 3 requests
            calls = [
                asgi_request(app, "POST", "/invocations", _csv(rows[i : i + 1]), headers)
                for i in range(3)
            ]
            assert all(r[0] == 200 for r in await asyncio.gather(*calls))

        asyncio.run(together())
        asyncio.run(asgi_request(app, "POST", "/invocations", _csv(rows[:1]), headers))
        asyncio.run(asgi_request(app, "POST", "/invocations", _csv(rows[:6]), headers))
        stats = _stats(app)
        # 3 merged (1 call), 1 alone in the queue (1 call), 6 rows > max 4 (alone, no call).
        assert stats["batching"] == {"batches": 2, "batchedRows": 4, "alone": 2, "largestRows": 3}
        assert stats["compiledTier"] == {"state": "off"}
        assert stats["compiledModels"] == {"off": 1, "pending": 0, "compiled": 0, "failed": 0}
    finally:
        app.close()


def test_an_instance_without_batching_has_no_counters(
    tmp_path: Path, trained: tuple[Any, np.ndarray]
) -> None:
    app = loaded_app(write_booster(tmp_path / "model", trained[0]), batching=False)
    try:
        assert _stats(app)["batching"] is None
    finally:
        app.close()


class _FakeRuntime:
    """What the tier reads of a runtime; never attaches (the folders hold no library)."""

    name = "xgboost"
    tree_framework = "xgboost"

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def attach_compiled(self, predictor: Any) -> bool:
        return False


def _settled(tier: CompileTier, label: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (state := tier.state(label))["state"] == "pending":
        assert time.monotonic() < deadline, "the tier never settled"
        time.sleep(0.02)
    return state


def test_the_tier_reports_failed_with_the_reason_and_forgets_unloaded_models(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "compiled"
    tier = CompileTier(TierConfig(enabled=True, cache_dir=cache))
    refused, slower = tmp_path / "a", tmp_path / "b"
    for folder, text in ((refused, b"one"), (slower, b"two")):
        folder.mkdir()
        (folder / "xgboost-model").write_bytes(text)
    # What a child process left behind: a refusal, and a form that is not usable.
    done = cache / model_digest(refused, "xgboost")
    done.mkdir(parents=True)
    (done / FAILED).write_text(json.dumps({"reason": "no trees in a gblinear model"}))
    unusable = cache / model_digest(slower, "xgboost")
    unusable.mkdir(parents=True)
    (unusable / MARKER).write_text("{}")
    for entry in (done, unusable):  # complete entries of the bounded cache (store/cache_bound.py)
        cache_bound.marker(cache, entry.name).touch()
    try:
        tier.offer(_FakeRuntime(refused), "a")  # type: ignore[arg-type]
        tier.offer(_FakeRuntime(slower), "b")  # type: ignore[arg-type]
        assert _settled(tier, "a") == {"state": "failed", "reason": "no trees in a gblinear model"}
        assert _settled(tier, "b") == {
            "state": "failed",
            "reason": "its compiled form is not faster",
        }
        tier.forget("a")
        assert tier.state("a") == {"state": "off"}
        assert tier_counts([tier.state("a"), tier.state("b")]) == {
            "off": 1,
            "pending": 0,
            "compiled": 0,
            "failed": 1,
        }
    finally:
        tier.close()


def test_a_disabled_tier_and_a_runtime_without_trees_are_off(tmp_path: Path) -> None:
    runtime = _FakeRuntime(tmp_path)
    off = CompileTier(TierConfig(enabled=False, cache_dir=tmp_path))
    off.offer(runtime, "m")  # type: ignore[arg-type]
    assert off.state("m") == {"state": "off"}
    runtime.tree_framework = None  # type: ignore[assignment]
    on = CompileTier(TierConfig(enabled=True, cache_dir=tmp_path))
    on.offer(runtime, "m")  # type: ignore[arg-type]
    assert on.state("m") == {"state": "off"}


def test_unloaded_models_counters_stay_in_the_instance_totals() -> None:
    runtime: Any = object()
    gone, live = Batcher(runtime, 8, 0.0), Batcher(runtime, 8, 0.0)
    gone.calls, gone.batched_rows, gone.alone, gone.largest = 3, 10, 1, 6
    live.calls, live.batched_rows, live.alone, live.largest = 2, 2, 2, 1
    totals = BatchTotals()
    assert totals.total([None]) is None  # nothing ever batched
    totals.retire(gone)
    states = {
        "a": {"state": "compiled"},
        "b": {"state": "off"},
        "c": {"state": "failed", "reason": "r"},
    }
    stats = multimodel_stats([live, None, None], states, totals)
    assert stats["batching"] == {"batches": 5, "batchedRows": 12, "alone": 3, "largestRows": 6}
    assert stats["compiledModels"] == {"off": 1, "pending": 0, "compiled": 1, "failed": 1}
    assert stats["compileFailures"] == [{"modelName": "c", "reason": "r"}]


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_two_workers_answer_with_both_workers_counters(
    tmp_path: Path, trained: tuple[Any, np.ndarray]
) -> None:
    booster, rows = trained
    model_dir = write_booster(tmp_path / "model", booster)
    with Instance(model_dir, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}) as instance:
        assert instance.wait_ping()[0] == 200
        # New connections spread over both workers (SO_REUSEPORT); 3 rows each.
        for _ in range(REQUESTS):
            assert instance.invoke(_csv(rows[:3]), "text/csv")[0] == 200
        deadline = time.monotonic() + 60
        while True:  # the other worker publishes its counters every second
            status, _, body = instance.request("GET", "/modelhost/stats")
            assert status == 200
            counters = json.loads(body)["batching"]
            if counters["batchedRows"] == 3 * REQUESTS:
                break
            assert counters["batchedRows"] < 3 * REQUESTS
            assert time.monotonic() < deadline, counters
            time.sleep(0.2)
        # One request at a time: each alone in its worker's queue, one call each.
        assert counters == {
            "batches": REQUESTS,
            "batchedRows": 3 * REQUESTS,
            "alone": REQUESTS,
            "largestRows": 3,
        }


def test_an_auto_tier_on_a_machine_that_cannot_compile_is_off_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelhost.container import compile_tier

    monkeypatch.setattr(compile_tier, "unavailable", lambda: "no C compiler")
    tier = CompileTier(TierConfig(enabled=True, auto=True, cache_dir=tmp_path))
    tier.offer(_FakeRuntime(tmp_path), "first")  # type: ignore[arg-type]
    off = {"state": "off", "reason": "no C compiler"}
    deadline = time.monotonic() + 60
    while tier.state("first") != off:
        assert time.monotonic() < deadline, tier.state("first")
        time.sleep(0.02)
    tier.offer(_FakeRuntime(tmp_path), "second")  # type: ignore[arg-type]
    assert tier.state("second") == off
