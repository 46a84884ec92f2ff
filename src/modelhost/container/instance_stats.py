"""`GET /modelhost/stats`: what an instance is doing, for the gateway (modelhost's own
addition to the container contract; a server of the user's own does not answer it, and
the gateway then stops asking: gateway/instance_stats.py).

```
{"batching": {"batches", "batchedRows", "alone", "largestRows"} | null,
 "compiledModels": {"off": n, "pending": n, "compiled": n, "failed": n},
 "compiledTier": {"state", ...},      # single-model instances only
 "compileFailures": [{"modelName", "reason"}]}  # multi-model only, the first 20
```

`batches` counts the predict calls the batcher made (one queued request, or several
merged), `batchedRows` their rows, `alone` the requests predicted on their own (alone in
the queue, more rows than a merged call takes, or after a merged call failed): so
`batchedRows > batches` shows that merging happened. A multi-model instance sums its
models' counters, including those of models it has unloaded since (`BatchTotals`), so
the instance's totals never go down. `batching` is null when nothing batches (batching
off, or a runtime that cannot). The counters are plain ints the event loop adds to
(container/batching.py): reading them here costs the request path nothing.

With several worker processes (`SAGEMAKER_MODEL_SERVER_WORKERS`), each worker publishes
its counters into the instance's shared memory every `PUBLISH_S` (container/health.py),
and the worker that takes the request sums them: the other workers' part is at most that
old. The compiled tier's state is that worker's (each worker attaches the form the first
one compiled).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from modelhost.container.batching import Batcher
    from modelhost.container.health import SharedHealth

STATS_PATH = "/modelhost/stats"
PUBLISH_S = 1.0
TIER_STATES = ("off", "pending", "compiled", "failed")
MAX_FAILURES_LISTED = 20  # of a multi-model instance's models the tier failed on


def batching(batcher: Batcher | None) -> dict[str, int] | None:
    """One batcher's counters (None: the model does not batch)."""
    if batcher is None:
        return None
    return {
        "batches": batcher.calls,
        "batchedRows": batcher.batched_rows,
        "alone": batcher.alone,
        "largestRows": batcher.largest,
    }


class BatchTotals:
    """The counters of batchers gone (a multi-model instance's unloaded models)."""

    def __init__(self) -> None:
        self.any = False
        self.calls = 0
        self.batched_rows = 0
        self.alone = 0
        self.largest = 0

    def retire(self, batcher: Batcher | None) -> None:
        if batcher is None:
            return
        self.any = True
        self.calls += batcher.calls
        self.batched_rows += batcher.batched_rows
        self.alone += batcher.alone
        self.largest = max(self.largest, batcher.largest)

    def total(self, live: Iterable[Batcher | None]) -> dict[str, int] | None:
        """These counters plus those of the `live` batchers; None when none ever existed."""
        found = self.any
        out = {
            "batches": self.calls,
            "batchedRows": self.batched_rows,
            "alone": self.alone,
            "largestRows": self.largest,
        }
        for b in live:
            if b is None:
                continue
            found = True
            out["batches"] += b.calls
            out["batchedRows"] += b.batched_rows
            out["alone"] += b.alone
            out["largestRows"] = max(out["largestRows"], b.largest)
        return out if found else None


def tier_counts(states: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many models are in each compiled-tier state (every state named, 0 or more)."""
    counts = dict.fromkeys(TIER_STATES, 0)
    for state in states:
        name = str(state.get("state"))
        counts[name] = counts.get(name, 0) + 1
    return counts


def publish_batching(
    health: SharedHealth, batcher: Batcher, loop: asyncio.AbstractEventLoop
) -> None:
    """Now and every PUBLISH_S: this worker's counters into the workers' shared table."""
    health.publish_stats((batcher.calls, batcher.batched_rows, batcher.alone, batcher.largest))
    loop.call_later(PUBLISH_S, publish_batching, health, batcher, loop)


def workers_batching(health: SharedHealth, batcher: Batcher) -> dict[str, int]:
    """The instance's counters: this worker's now, the others' as last published."""
    health.publish_stats((batcher.calls, batcher.batched_rows, batcher.alone, batcher.largest))
    rows = health.stats()
    return {
        "batches": sum(r[0] for r in rows),
        "batchedRows": sum(r[1] for r in rows),
        "alone": sum(r[2] for r in rows),
        "largestRows": max(r[3] for r in rows),
    }


def single_model_stats(
    batcher: Batcher | None, tier_state: dict[str, Any], health: SharedHealth | None = None
) -> dict[str, Any]:
    """The stats of a single-model instance (`tier_state`: CompileTier.state; `health`:
    the workers' shared table when there are several)."""
    counters: dict[str, int] | None
    if health is not None and health.count > 1 and batcher is not None:
        counters = workers_batching(health, batcher)
    else:
        counters = batching(batcher)
    return {
        "batching": counters,
        "compiledModels": tier_counts([tier_state]),
        "compiledTier": tier_state,
    }


def multimodel_stats(
    batchers: list[Batcher | None], states: dict[str, dict[str, Any]], retired: BatchTotals
) -> dict[str, Any]:
    """The stats of a multi-model instance from its loaded models' batchers and tier
    states (by model name), and the counters of those it unloaded (`retired`)."""
    failed = [
        {"modelName": name, "reason": state.get("reason", "")}
        for name, state in sorted(states.items())
        if state.get("state") == "failed"
    ]
    return {
        "batching": retired.total(batchers),
        "compiledModels": tier_counts(states.values()),
        "compileFailures": failed[:MAX_FAILURES_LISTED],
    }
