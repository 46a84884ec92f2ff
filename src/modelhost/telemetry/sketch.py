"""A bounded, mergeable quantile sketch for CloudWatch's percentile statistics (p50, p99).

Values fall into logarithmic bins: bin `i` holds values in (γ^(i-1), γ^i] with
γ = (1 + α) / (1 - α), and a quantile is answered with the bin's midpoint 2γ^i / (γ + 1),
so every answer is within a relative error α of a value of the sample's rank (DDSketch's
guarantee). With α = 1 % the bins cover 1e-9 … 1e9 in about 2 000 bins; a bin count past
`MAX_BINS` folds the lowest bins together (only the smallest quantiles lose accuracy).
Zero and negative values share one bin answered as 0. Sketches merge by adding counts, so
a period's percentile is exact to α however its seconds are rolled up.
"""

from __future__ import annotations

import math
from array import array

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
MAX_BINS = 2048
ZERO_BIN = -(2**31)


class Sketch:
    """Counts per logarithmic bin; `add`, `merge`, `quantile`, and a compact byte form."""

    __slots__ = ("bins",)

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}

    def add(self, value: float, count: int = 1) -> None:
        key = math.ceil(math.log(value) * _INV_LOG_GAMMA) if value > 0 else ZERO_BIN
        bins = self.bins
        bins[key] = bins.get(key, 0) + count
        if len(bins) > MAX_BINS:
            self._fold()

    def merge(self, other: Sketch) -> None:
        bins = self.bins
        for key, count in other.bins.items():
            bins[key] = bins.get(key, 0) + count
        if len(bins) > MAX_BINS:
            self._fold()

    def _fold(self) -> None:
        keys = sorted(k for k in self.bins if k != ZERO_BIN)
        extra = len(self.bins) - MAX_BINS
        target = keys[extra]
        for key in keys[:extra]:
            self.bins[target] += self.bins.pop(key)

    @property
    def count(self) -> int:
        return sum(self.bins.values())

    def quantile(self, q: float) -> float | None:
        """The value at quantile q (0..1), or None for an empty sketch."""
        total = self.count
        if total == 0:
            return None
        rank = q * (total - 1)
        seen = 0
        for key in sorted(self.bins):
            seen += self.bins[key]
            if seen > rank:
                if key == ZERO_BIN:
                    return 0.0
                return 2.0 * GAMMA**key / (GAMMA + 1.0)
        return None  # not reached: the last bin always passes the rank

    def to_bytes(self) -> bytes:
        """(bin, count) pairs as 32-bit integers: 8 bytes a bin (a count past 2^31 in one
        point would need a rate of 35 million a second in a minute's rollup)."""
        flat = array("i")
        for key, count in self.bins.items():
            flat.append(key)
            flat.append(count)
        return flat.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Sketch:
        flat = array("i")
        flat.frombytes(data)
        sketch = cls()
        sketch.bins = dict(zip(flat[::2], flat[1::2], strict=True))
        return sketch
