"""A served tree model's compiled form, used in place of its framework's predict.

Written by `modelhost.compile.tier` in a child process of the instance (see
container/compile_tier.py); loaded here. Runtimes that can use one (XGBoost, LightGBM;
scikit-learn through `sklearn_trees.SklearnCompiled`, which turns scores into answers)
call `CompiledPredictor.predict` before their own fast path: it has the same contract as
`xgboost_fast.FastPredictor.predict` (the answer, or None for a call it does not take),
and answers with the same shape, dtype and bits as the framework, which `matches`
checks again in the instance before a runtime switches over.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from modelhost.frameworks.compiled import LIBRARY, MARKER, MARKER_FORMAT, CompiledLibrary

if TYPE_CHECKING:
    from modelhost.store.cache_bound import Lease

# A compiled-tier folder (written by compile/tier.py, read here and by
# container/compile_tier.py): the marker, the library, these check rows, or FAILED alone.
CHECK_ROWS = "check.npy"
FAILED = "failed.json"
# The library's global holding its base margins (compile/tier.py explains why).
BASE_VARIABLE = "mh_base_margin"


class CompiledPredictor:
    """The compiled library of one model, shaped like its framework's answers.

    Takes 2-D C-contiguous arrays of the library's dtype, of the model's width, of at
    most `max_rows` rows (the largest batch it measured faster for); None otherwise.
    """

    def __init__(
        self,
        library: CompiledLibrary,
        max_rows: int,
        check_rows: NDArray[Any],
        margin: bool = False,
    ) -> None:
        self._library = library
        # Raw scores, before the library's postprocessor (scikit-learn: sklearn_trees.py).
        self._margin = margin
        self.max_rows = max_rows
        self.check_rows = check_rows
        self._dtype = np.dtype(library.dtype)
        self._width = library.num_feature
        self._flat = library.num_output == 1
        # The bounded cache's lease on the folder (store/cache_bound.py), held while used.
        self.lease: Lease | None = None

    @classmethod
    def load(cls, folder: Path) -> CompiledPredictor | None:
        """The predictor in a compiled-tier folder; None when it holds no usable one."""
        try:
            marker = json.loads((folder / MARKER).read_text())
            check = np.load(folder / CHECK_ROWS)
        except (OSError, ValueError):
            return None
        tier = marker.get("tier") or {}
        if marker.get("format") != MARKER_FORMAT or int(tier.get("max_rows", 0)) < 1:
            return None
        library = CompiledLibrary(
            folder / LIBRARY,
            int(marker["num_feature"]),
            int(marker["num_output"]),
            str(marker["input_dtype"]),
        )
        base = [float.fromhex(v) for v in marker.get("base_margin") or []]
        if base:
            # The margins the compiler found to give the framework's bits (compile/tier.py).
            library.floats(BASE_VARIABLE, len(base))[:] = base
        return cls(library, int(tier["max_rows"]), check, bool(marker.get("pred_margin")))

    def predict(self, data: Any) -> NDArray[Any] | None:
        if not (
            type(data) is np.ndarray
            and data.ndim == 2
            and data.dtype == self._dtype
            and data.flags.c_contiguous
            and 0 < data.shape[0] <= self.max_rows
            and data.shape[1] == self._width
        ):
            return None
        out = self._library.predict(data, self._margin)
        return out[:, 0] if self._flat else out

    def close(self) -> None:
        """Release the library and the lease (idempotent). From here on every call gets
        None, so a runtime falls back to its framework; the caller makes sure no call is
        in flight in the library itself (container/compile_tier.py `release`)."""
        self.max_rows = 0
        self._library.close()
        if self.lease is not None:
            self.lease.close()
            self.lease = None

    def matches(self, framework_predict: Callable[[NDArray[Any]], Any]) -> bool:
        """True when the framework answers the check rows (one at a time and together)
        with the same shape, dtype and bits as this predictor."""
        rows = np.ascontiguousarray(self.check_rows[: self.max_rows], dtype=self._dtype)
        for batch in (rows[:1], rows):
            mine = self.predict(batch)
            theirs = np.asarray(framework_predict(batch))
            if mine is None or mine.shape != theirs.shape or mine.dtype != theirs.dtype:
                return False
            if not np.array_equal(mine, theirs, equal_nan=True):
                return False
        return True
