"""Compile a served tree model for the compiled tier, in a child process of the instance:
`python -m modelhost.compile.tier MODEL_DIR FRAMEWORK OUT_DIR [TIMEOUT_S [MAX_ROWS]]`.

Why: a call into XGBoost costs 20–40 µs however few rows it scores (argument parsing,
its per-call device lookup, cache misses on a model not used a moment ago), while the
same trees compiled to C (Treelite + TL2cgen, `native_c`) score a row in a few µs. A
multi-model instance whose requests each name another model, or any instance without
batching, pays that cost per request.

An instance with `MH_INSTANCE_COMPILE_TREES=on` (container/compile_tier.py) runs this
module in a child process after it loads a tree model. Unlike a compilation job, which
accepts answers within 1e-6, the compiled form is kept only when its answers are the
same bits as the framework's on rows that exercise every split (each threshold, its
float neighbours, missing values): the instance then switches its predict over without
any answer changing. The child measures both forms at a few batch sizes and records the
largest batch the compiled form is faster for.

OUT_DIR ends up holding `modelhost-compiled.json` (with `tier.max_rows`), `model.so`
and `check.npy` (rows the instance checks again after loading the library), or only
`failed.json` saying why the model stays on its framework. It is written under a
temporary name and renamed, so a reader never sees half of it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelhost.compile import native_c
from modelhost.compile.build import sample_rows
from modelhost.compile.choose import median_call_us
from modelhost.compile.sources import CompileError, SourceModel, load_source
from modelhost.frameworks.compiled import LIBRARY, MARKER, MARKER_FORMAT, CompiledLibrary
from modelhost.frameworks.compiled_predictor import BASE_VARIABLE, CHECK_ROWS, FAILED

log = logging.getLogger("modelhost.compile")

SAMPLE_ROWS = 4000
KEPT_CHECK_ROWS = 256
# Batch sizes measured; the compiled form takes calls up to the largest it won at.
MEASURED_ROWS = (1, 64, 512, 4096)
MEASURE_BUDGET_NS = 150_000_000


def same_bits(reference: NDArray[Any], candidate: NDArray[Any]) -> bool:
    """Equal shapes and equal values, NaN where the other has NaN: no tolerance."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(candidate, dtype=np.float64)
    return ref.shape == got.shape and bool(np.array_equal(ref, got, equal_nan=True))


def faster_up_to(native_us: dict[int, float], compiled_us: dict[int, float]) -> int:
    """The largest measured batch size up to which the compiled form was faster at every
    size; 0 when it lost at one row (then it is not worth switching)."""
    best = 0
    for rows in sorted(native_us):
        if compiled_us[rows] >= native_us[rows]:
            break
        best = rows
    return best


def compile_for_tier(
    model_dir: Path, framework: str, out_dir: Path, timeout_s: float, max_rows: int = 0
) -> None:
    """Compile `model_dir` into `out_dir` (see the module docstring); never raises for
    the model: a failure is recorded in `out_dir/failed.json`. `max_rows` > 0 is the
    largest call the compiled form takes, instead of measuring it."""
    work = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        marker = _compile(model_dir, framework, work, timeout_s, max_rows)
        (work / MARKER).write_text(json.dumps(marker, indent=2))
    except Exception as exc:  # any failure leaves the model on its framework
        log.info("compiling %s for the compiled tier failed", model_dir, exc_info=True)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        reason = str(exc) if isinstance(exc, CompileError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ImportError):
            reason = f"{exc}: install it with pip install treelite tl2cgen"
        (work / FAILED).write_text(json.dumps({"reason": reason}))
    shutil.rmtree(out_dir, ignore_errors=True)
    work.rename(out_dir)


def _compile(
    model_dir: Path, framework: str, work: Path, timeout_s: float, max_rows: int
) -> dict[str, Any]:
    source = load_source(model_dir, framework)
    if source.kind not in ("xgboost", "lightgbm"):
        raise CompileError(f"the compiled tier takes XGBoost and LightGBM, not {source.kind}")
    model = source.treelite_model()
    dtype = np.float32 if source.input_dtype == "float32" else np.float64
    sample = sample_rows(model, source, SAMPLE_ROWS).astype(dtype)
    reference = source.native_predict(sample)
    src = work / "src"
    src.mkdir()
    sources = native_c.generate(model, src)
    base = _base_margin_variable(src / "main.c")
    native_c.build(sources, work / LIBRARY, timeout_s)
    shutil.rmtree(src, ignore_errors=True)
    num_output = int(reference.shape[1])
    library = CompiledLibrary(work / LIBRARY, source.num_feature, num_output, source.input_dtype)
    chosen = _matching_base(library, base, sample, reference)
    np.save(work / CHECK_ROWS, sample[:KEPT_CHECK_ROWS])
    native_us, compiled_us = ({}, {}) if max_rows else _measure(source, library, sample)
    return {
        "format": MARKER_FORMAT,
        "backend": "c",
        "source_framework": source.kind,
        "num_feature": source.num_feature,
        "num_output": num_output,
        "input_dtype": source.input_dtype,
        "output": source.output,
        "base_margin": [float(v).hex() for v in chosen],
        "tier": {
            "max_rows": max_rows or faster_up_to(native_us, compiled_us),
            "native_us": native_us,
            "compiled_us": compiled_us,
            "checked_rows": int(sample.shape[0]),
        },
    }


# The base margin lines native_c puts first in `predict` (float models only).
_BASE_LINE = re.compile(r"^  result\[(\d+)\] \+= \(float\)\(([^)]+)\);$")
_PREDICT_OPEN = "void predict(union Entry* data, int pred_margin, float* result) {"


def _base_margin_variable(main_c: Path) -> list[float]:
    """Make the base margins a global the tier can set (see `_matching_base`); their
    values as TL2cgen wrote them, or [] when the model has none to set (double models).

    Why: XGBoost turns a model's base_score into a margin in float32 arithmetic, Treelite
    in double; the two can differ by an ulp, and then every sum differs by one too."""
    lines = main_c.read_text().split("\n")
    try:
        start = lines.index(_PREDICT_OPEN) + 1
    except ValueError:
        return []
    values: list[float] = []
    while start + len(values) < len(lines):
        found = _BASE_LINE.match(lines[start + len(values)])
        if found is None or int(found.group(1)) != len(values):
            break
        values.append(float(found.group(2)))
    if not values:
        return []
    for k in range(len(values)):
        lines[start + k] = f"  result[{k}] += {BASE_VARIABLE}[{k}];"
    literals = ", ".join(f"{v!r}f" for v in np.asarray(values, dtype=np.float32).tolist())
    lines.insert(start - 1, f"float {BASE_VARIABLE}[{len(values)}] = {{{literals}}};")
    main_c.write_text("\n".join(lines))
    return values


def _matching_base(
    library: CompiledLibrary, base: list[float], sample: NDArray[Any], reference: NDArray[Any]
) -> list[float]:
    """The base margins (TL2cgen's, or a few ulps off) under which the library answers
    the sample with the framework's bits; `CompileError` when none does."""
    if base:
        cell = library.floats(BASE_VARIABLE, len(base))
        first = np.asarray(base, dtype=np.float32)
        for ulps in (0, -1, 1, -2, 2, -3, 3):
            values = first
            for _ in range(abs(ulps)):
                values = np.nextafter(values, np.float32(np.inf if ulps > 0 else -np.inf))
            cell[:] = values.tolist()
            if same_bits(reference, library.predict(sample)):
                return [float(v) for v in values]
    elif same_bits(reference, library.predict(sample)):
        return []
    raise CompileError("the compiled form's answers are not the same bits as the model's")


def _measure(
    source: SourceModel, library: CompiledLibrary, sample: NDArray[Any]
) -> tuple[dict[int, float], dict[int, float]]:
    native: dict[int, float] = {}
    compiled: dict[int, float] = {}
    for rows in MEASURED_ROWS:
        x = np.ascontiguousarray(np.resize(sample, (rows, sample.shape[1])))
        native[rows] = _median_us(lambda x=x: source.native_predict(x))
        compiled[rows] = _median_us(lambda x=x: library.predict(x))
    return native, compiled


def _median_us(call: Any) -> float:
    call()  # warm caches and lazy initialisation outside the measurement
    return median_call_us(call, time.perf_counter_ns, 200, MEASURE_BUDGET_NS)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # Serving comes first: the compiler runs at a lower priority than the instance.
    os.nice(10)
    model_dir, framework, out_dir = Path(argv[1]), argv[2], Path(argv[3])
    timeout_s = float(argv[4]) if len(argv) > 4 else 600.0
    max_rows = int(argv[5]) if len(argv) > 5 else 0
    compile_for_tier(model_dir, framework, out_dir, timeout_s, max_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
