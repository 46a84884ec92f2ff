"""Tree ensemble → ONNX (onnxmltools / skl2onnx), run by onnxruntime.

The second compilation target: no C compiler needed, and onnxruntime's tree kernels are
fast on larger batches. Converters work in float32, so a model whose thresholds or
leaves need float64 (LightGBM, scikit-learn) usually fails the exactness check; the job
then records why and serves the C form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelhost.compile.sources import CompileError, SourceModel


def convert(source: SourceModel, path: Path) -> None:
    """Write `source` as an ONNX graph at `path`; `CompileError` when no converter fits."""
    try:
        onx = _convert(source)
    except CompileError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CompileError(f"ONNX conversion failed: {type(exc).__name__}: {first}") from None
    path.write_bytes(onx.SerializeToString())


def _convert(source: SourceModel) -> Any:
    if source.kind == "sklearn":
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        options = {id(source.obj): {"zipmap": False}} if source.classes else None
        return convert_sklearn(
            source.obj,
            initial_types=[("input", FloatTensorType([None, source.num_feature]))],
            options=options,
        )
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat

    types = [("input", MlFloat([None, source.num_feature]))]
    if source.kind == "xgboost":
        return onnxmltools.convert_xgboost(source.obj, initial_types=types)
    return onnxmltools.convert_lightgbm(source.obj, initial_types=types, zipmap=False)


def output_index(path: Path) -> int:
    """Which graph output holds the scores: probabilities for classifiers, else the first."""
    import onnx

    graph = onnx.load(str(path)).graph
    names = [o.name for o in graph.output]
    for i, name in enumerate(names):
        if "prob" in name.lower():
            return i
    return 0
