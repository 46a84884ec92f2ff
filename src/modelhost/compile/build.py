"""One compilation: load the model, build every target, check each against the original,
measure them on the job's input shape, and write the compiled artifact.

The artifact directory holds `modelhost-compiled.json` (the marker the compiled runtime
reads, with both targets' measurements), `model.so` and its C sources in `src/` when the C
form is exact, and `model.onnx` when the ONNX form is.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelhost import __version__
from modelhost.compile import native_c, onnx_target
from modelhost.compile.choose import Exactness, exactness, fastest, median_call_us
from modelhost.compile.sources import CompileError, SourceModel, load_source
from modelhost.frameworks.compiled import (
    LIBRARY,
    MARKER,
    MARKER_FORMAT,
    ONNX_MODEL,
    CompiledLibrary,
    CompiledRuntime,
)

log = logging.getLogger("modelhost.compile")

SAMPLE_ROWS = 2000
MEASURE_CALLS = 2000
MEASURE_BUDGET_NS = 400_000_000


@dataclass(frozen=True)
class CompileRequest:
    """What the worker compiles: an unpacked artifact, its framework and input shape."""

    model_dir: Path
    framework: str
    input_shape: list[int] | None
    out_dir: Path
    timeout_s: float
    digest: str = ""
    target_device: str = ""


def sample_rows(model: Any, source: SourceModel, rows: int, seed: int = 0) -> NDArray[Any]:
    """Rows that exercise every split: each value is a threshold, a neighbour of one or a
    midpoint, and (when the framework allows it) sometimes missing."""
    rng = np.random.default_rng(seed)
    doc = json.loads(model.dump_as_json())
    by_feature: dict[int, list[float]] = {}
    for tree in doc["trees"]:
        for node in tree["nodes"]:
            if "threshold" in node:
                by_feature.setdefault(int(node["split_feature_id"]), []).append(node["threshold"])
    dtype = np.float32 if source.input_dtype == "float32" else np.float64
    x = rng.normal(size=(rows, source.num_feature)).astype(dtype)
    for feature, values in by_feature.items():
        # LightGBM splits at ±1e-35 to tell zero from non-zero; it reads values that small
        # as zero, Treelite as numbers. No real input sits there, so sample 0.0 instead.
        t = np.asarray(sorted({0.0 if abs(v) < 1e-30 else v for v in values}), dtype=dtype)
        pick = t[rng.integers(0, len(t), rows)]
        how = rng.integers(0, 4, rows)
        x[:, feature] = np.where(
            how == 0,
            pick,
            np.where(how == 1, np.nextafter(pick, dtype(-np.inf)), np.nextafter(pick, np.inf)),
        )
        x[how == 3, feature] = pick[how == 3] + dtype(rng.normal()) * (t.std() + 1)
    x[np.abs(x) < 1e-30] = 0.0
    if source.allows_missing:
        x[rng.random(x.shape) < 0.1] = np.nan
    return x


def compile_model(req: CompileRequest) -> dict[str, Any]:
    """Compile `req.model_dir` into `req.out_dir`; returns the report (also in the marker)."""
    source = load_source(req.model_dir, req.framework)
    batch = _check_shape(req.input_shape, source.num_feature)
    model = source.treelite_model()
    sample = sample_rows(model, source, SAMPLE_ROWS)
    reference = source.native_predict(_as_runtime_input(source, sample))
    req.out_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + req.timeout_s
    targets: dict[str, dict[str, Any]] = {}
    marker = _base_marker(req, source, int(reference.shape[1]))
    runtimes: dict[str, CompiledRuntime] = {}
    for name, build in (("c", _build_c), ("onnx", _build_onnx)):
        remaining = deadline - time.monotonic()
        try:
            extra = build(model, source, req.out_dir, remaining)
            runtime = _runtime(req.out_dir, {**marker, **extra, "backend": name})
            check = exactness(reference, runtime.scores(sample))
        except Exception as exc:  # any failure of one target leaves the other
            log.info("compile target %s failed", name, exc_info=True)
            check = Exactness(False, float("inf"), str(exc))
            extra = {}
        targets[name] = {"Exact": check.exact, "MaxAbsDiff": _finite(check.max_abs_diff)}
        if check.reason:
            targets[name]["Reason"] = check.reason
        if check.exact:
            marker.update(extra)
            runtimes[name] = runtime
    if not runtimes:
        reasons = "; ".join(f"{k}: {v.get('Reason')}" for k, v in targets.items())
        raise CompileError(
            f"No compiled form reproduces the model's predictions to 1e-6 ({reasons})"
        )
    rows = _as_runtime_input(source, sample[:batch])
    latencies = {name: _measure(lambda r=rt: r.scores(rows)) for name, rt in runtimes.items()}
    native_us = _measure(lambda: source.native_predict(rows))
    for name, us in latencies.items():
        targets[name].update({"LatencyMicros": us, "SpeedupVsNative": native_us / us})
    chosen = fastest(latencies)
    _drop_unused(req.out_dir, runtimes)
    marker.update(
        {
            "backend": chosen,
            "targets": targets,
            "native_latency_us": native_us,
            "measured_rows": batch,
        }
    )
    (req.out_dir / MARKER).write_text(json.dumps(marker, indent=2))
    return marker


def _check_shape(shape: list[int] | None, num_feature: int) -> int:
    if not shape:
        return 1
    if shape[-1] != num_feature:
        raise CompileError(
            f"DataInputConfig gives {shape[-1]} features per row ({shape}); the model takes "
            f'{num_feature}: set DataInputConfig to {{"data": [1, {num_feature}]}}'
        )
    return max(1, int(shape[0]) if len(shape) > 1 else 1)


def _as_runtime_input(source: SourceModel, x: NDArray[Any]) -> NDArray[Any]:
    return x.astype(np.float32 if source.input_dtype == "float32" else np.float64)


def _base_marker(req: CompileRequest, source: SourceModel, num_output: int) -> dict[str, Any]:
    return {
        "format": MARKER_FORMAT,
        "source_framework": source.kind,
        "num_feature": source.num_feature,
        "num_output": num_output,
        "input_dtype": source.input_dtype,
        "cast_float32": source.cast_float32,
        "output": source.output,
        "classes": source.classes,
        "input_shape": req.input_shape or [1, source.num_feature],
        "content_types": ["text/csv", "application/json"],
        "model_digest": req.digest,
        "target_device": req.target_device,
        "modelhost_version": __version__,
    }


def _build_c(model: Any, source: SourceModel, out: Path, timeout_s: float) -> dict[str, Any]:
    src = out / "src"
    src.mkdir(exist_ok=True)
    sources = native_c.generate(model, src)
    native_c.build(sources, out / LIBRARY, max(1.0, timeout_s))
    return {"library": LIBRARY}


def _build_onnx(model: Any, source: SourceModel, out: Path, timeout_s: float) -> dict[str, Any]:
    path = out / ONNX_MODEL
    onnx_target.convert(source, path)
    return {"onnx_model": ONNX_MODEL, "onnx_output_index": onnx_target.output_index(path)}


def _runtime(out: Path, marker: dict[str, Any]) -> CompiledRuntime:
    (out / MARKER).write_text(json.dumps(marker))
    runtime = CompiledRuntime()
    runtime.load(out)
    return runtime


def _measure(call: Any) -> float:
    call()  # warm caches and lazy initialisation outside the measurement
    return median_call_us(call, time.perf_counter_ns, MEASURE_CALLS, MEASURE_BUDGET_NS)


def _drop_unused(out: Path, kept: dict[str, CompiledRuntime]) -> None:
    if "c" not in kept:
        (out / LIBRARY).unlink(missing_ok=True)
        shutil.rmtree(out / "src", ignore_errors=True)
    if "onnx" not in kept:
        (out / ONNX_MODEL).unlink(missing_ok=True)


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def library(out: Path, marker: dict[str, Any]) -> CompiledLibrary:
    """The compiled library of an artifact (for tools that need no runtime around it)."""
    return CompiledLibrary(
        out / LIBRARY,
        int(marker["num_feature"]),
        int(marker["num_output"]),
        str(marker["input_dtype"]),
    )
