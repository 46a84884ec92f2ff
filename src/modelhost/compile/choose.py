"""Pure decisions of a compilation: is a compiled form exact, and which one to serve.

No I/O: the builder measures and passes numbers in; tests call these directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# The rule: a compiled model answers what the original answers, to 1e-6.
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Exactness:
    """How far a compiled form's answers are from the original framework's."""

    exact: bool
    max_abs_diff: float
    reason: str | None = None


def exactness(reference: NDArray[Any], candidate: NDArray[Any]) -> Exactness:
    """Compare n × k score arrays; NaN must meet NaN, everything else within TOLERANCE."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(candidate, dtype=np.float64)
    if ref.shape != got.shape:
        return Exactness(False, float("inf"), f"output shape {got.shape}, expected {ref.shape}")
    nan_mismatch = np.isnan(ref) != np.isnan(got)
    if nan_mismatch.any():
        row = int(np.argwhere(nan_mismatch)[0][0])
        return Exactness(False, float("inf"), f"NaN where the original is not, row {row}")
    diff = np.abs(np.nan_to_num(ref) - np.nan_to_num(got))
    worst = float(diff.max()) if diff.size else 0.0
    if worst > TOLERANCE:
        row = int(np.unravel_index(int(diff.argmax()), diff.shape)[0])
        return Exactness(
            False,
            worst,
            f"differs from the original by {worst:.3g} (> {TOLERANCE:g}) at sample row {row}",
        )
    return Exactness(True, worst)


def fastest(latencies_us: Mapping[str, float]) -> str:
    """The target with the lowest measured latency; ties go to the first listed."""
    if not latencies_us:
        raise ValueError("no target to choose from")
    return min(latencies_us, key=lambda name: latencies_us[name])


def median_call_us(
    call: Callable[[], object], clock_ns: Callable[[], int], calls: int, budget_ns: int
) -> float:
    """Median time of one `call()` in µs, over up to `calls` calls within `budget_ns`."""
    times: list[int] = []
    start = clock_ns()
    while len(times) < calls:
        t0 = clock_ns()
        call()
        t1 = clock_ns()
        times.append(t1 - t0)
        if t1 - start > budget_ns and len(times) >= 5:
            break
    times.sort()
    return times[len(times) // 2] / 1000.0
