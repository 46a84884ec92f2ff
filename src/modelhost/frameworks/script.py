"""Script mode: the SageMaker inference toolkit's handler contract.

The entry script (`SAGEMAKER_PROGRAM`, default `inference.py`, in
`SAGEMAKER_SUBMIT_DIRECTORY`, default `<model_dir>/code`) may define:

- `model_fn(model_dir[, context])` → model
- `input_fn(input_data, content_type[, context])` → data
- `predict_fn(data, model[, context])` → prediction
- `output_fn(prediction, accept[, context])` → body or `(body, content_type)`
- `transform_fn(model, input_data, content_type, accept[, context])` → the same, replacing
  the three above (defining it together with any of them is a load error).
- `pre_model_fn(model_dir[, context])` and `model_warmup_fn(model_dir, model[, context])`:
  optional hooks run just before and just after `model_fn` (or the framework's loader).

`context` is passed when the function takes one more parameter than the list above
(the toolkit counts parameters the same way); see `frameworks.base.Context`. Missing
functions fall back to the underlying framework (its loader and predict) and the
toolkit's decoders/encoders. JSON and CSV bodies reach `input_fn`/`transform_fn` as
`str` (UTF-8), all others as `bytes`; `content_type` and `accept` are passed as the
client sent them, except that a missing Accept or `*/*` becomes
`SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` or `application/json`. A `str` result is
UTF-8 encoded. A result that is an iterator (a generator, sync or async) of `bytes`/`str`
chunks streams: each chunk is written as it is produced (`frameworks.streaming`); a
`predict_fn` that yields with no `output_fn` streams its chunks as they are.

A `requirements.txt` beside the script is pip-installed before the script is imported,
into a cached directory shared by every instance with the same requirements (see
`frameworks.requirements`); a failed install fails the load with pip's message.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelhost.codecs import csv as csv_codec
from modelhost.codecs import json as json_codec
from modelhost.codecs import jsonlines as jsonlines_codec
from modelhost.codecs import libsvm as libsvm_codec
from modelhost.codecs import npy as npy_codec
from modelhost.codecs import recordio as recordio_codec
from modelhost.codecs import registry
from modelhost.codecs.media import choose_accept
from modelhost.errors import (
    DecodeError,
    InferenceError,
    InvalidInput,
    ModelLoadError,
    UnsupportedContentType,
)
from modelhost.frameworks.base import Context, Runtime, RuntimeOptions, describe_files
from modelhost.frameworks.requirements import REQUIREMENTS_FILE, activate, install_requirements
from modelhost.frameworks.streaming import Body, StreamedBody, is_stream

HANDLERS = (
    "model_fn",
    "input_fn",
    "predict_fn",
    "output_fn",
    "transform_fn",
    "pre_model_fn",
    "model_warmup_fn",
)
# Positional arguments each handler takes before the optional context.
_ARITY = {
    "model_fn": 1,
    "input_fn": 2,
    "predict_fn": 2,
    "output_fn": 2,
    "transform_fn": 4,
    "pre_model_fn": 1,
    "model_warmup_fn": 2,
}
_TEXT_TYPES = (registry.JSON, registry.CSV)  # decoded to str before input_fn (toolkit)
_INPUT_TYPES = (
    registry.JSON,
    registry.CSV,
    registry.NPY,
    registry.JSONLINES,
    registry.LIBSVM,
    recordio_codec.MEDIA_TYPE,
)
_OUTPUT_TYPES = (registry.JSON, registry.CSV, registry.NPY, registry.JSONLINES)


def accept_media(accept: str) -> str:
    """The content type of an answer whose handler named none: Accept's first type."""
    return accept.split(",", 1)[0].strip()


def wants_context(fn: Callable[..., Any], arity: int) -> bool:
    """True when `fn` takes a parameter beyond its `arity` positional ones."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional > arity


class ScriptRuntime(Runtime):
    """Runs a user's inference script on top of an optional framework runtime (`base`).

    `base` supplies the defaults a script leaves out: `model_fn` falls back to
    `base.load` (the script then receives `base.model`), `predict_fn` to `base.predict`.
    Without a base, `model_fn` is required.
    """

    name: ClassVar[str] = "script"
    inline_max_bytes = 0  # user code: cost unknown, always off the event loop

    def __init__(self, script: Path, base: Runtime | None, options: RuntimeOptions) -> None:
        super().__init__(options)
        self.script = script
        self.base = base
        self._model: Any = None
        self._fns: dict[str, Callable[..., Any]] = {}
        self._ctx: dict[str, bool] = {}
        self._label = str(script)

    @property
    def model(self) -> Any:
        return self._model

    # --- load -------------------------------------------------------------------------

    def load(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        try:
            self._label = str(self.script.relative_to(model_dir))
        except ValueError:
            self._label = str(self.script)
        packages = install_requirements(
            self.script.parent / REQUIREMENTS_FILE,
            self.options.packages_dir,
            self.options.pip_timeout_s,
            self.options.packages_cache_bytes,
        )
        if packages is not None:
            activate(packages)
        module = self._import()
        fns = {n: getattr(module, n) for n in HANDLERS if callable(getattr(module, n, None))}
        if "transform_fn" in fns:
            clash = [n for n in ("input_fn", "predict_fn", "output_fn") if n in fns]
            if clash:
                raise ModelLoadError(
                    f"{self._label} defines transform_fn together with {', '.join(clash)}: "
                    "define either transform_fn alone or input_fn/predict_fn/output_fn"
                )
        self._fns = fns
        self._ctx = {n: wants_context(fn, _ARITY[n]) for n, fn in fns.items()}
        self._model = self._load_model(model_dir)

    def _import(self) -> Any:
        program = self.script.stem
        code_dir = str(self.script.parent)
        # The toolkit prepends the code dir to PYTHONPATH so the script can import its
        # sibling modules; first, ahead of installed requirements, as there.
        if code_dir in sys.path:
            sys.path.remove(code_dir)
        sys.path.insert(0, code_dir)
        spec = importlib.util.spec_from_file_location(program, self.script)
        if spec is None or spec.loader is None:
            raise ModelLoadError(f"{self._label} cannot be imported: not a Python file")
        module = importlib.util.module_from_spec(spec)
        # Always a fresh module: a restarted load must not reuse a stale import.
        sys.modules[program] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(program, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise ModelLoadError(
                f"{self._label} failed to import: {type(exc).__name__}: {exc}{self._where(exc)}"
            ) from None
        return module

    def _where(self, exc: BaseException) -> str:
        if isinstance(exc, SyntaxError) and exc.lineno:
            return f" (line {exc.lineno})"
        script = str(self.script)
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == script]
        return f" (line {lines[-1]})" if lines else ""

    def _load_model(self, model_dir: Path) -> Any:
        ctx = Context(str(model_dir))
        if "pre_model_fn" in self._fns:
            self._hook("pre_model_fn", str(model_dir), ctx=ctx)
        model = self._framework_model(model_dir, ctx)
        if "model_warmup_fn" in self._fns:
            self._hook("model_warmup_fn", str(model_dir), model, ctx=ctx)
        return model

    def _hook(self, name: str, *args: Any, ctx: Context) -> Any:
        """Call a load-time handler; its failure is a load error naming it and the line."""
        try:
            return self._call(name, *args, ctx=ctx)
        except Exception as exc:
            raise ModelLoadError(
                f"{name} in {self._label} failed: {type(exc).__name__}: {exc}{self._where(exc)}"
            ) from None

    def _framework_model(self, model_dir: Path, ctx: Context) -> Any:
        if "model_fn" in self._fns:
            return self._hook("model_fn", str(model_dir), ctx=ctx)
        if self.base is None:
            raise ModelLoadError(
                f"{self._label} defines no model_fn and {model_dir} holds no model file a "
                f"built-in runtime can load (files present: {describe_files(model_dir)}): "
                "define model_fn(model_dir), or set MH_INSTANCE_RUNTIME to xgboost or sklearn"
            )
        self.base.load(model_dir)
        return self.base.model

    def _call(self, name: str, *args: Any, ctx: Context) -> Any:
        fn = self._fns[name]
        return fn(*args, ctx) if self._ctx[name] else fn(*args)

    # --- requests ---------------------------------------------------------------------

    def predict(self, data: Any) -> Any:
        """`predict_fn(data, model)` (or its default) on already-decoded data."""
        if "predict_fn" in self._fns:
            return self._call("predict_fn", data, self._model, ctx=Context(str(self.model_dir)))
        return self.default_predict_fn(data, self._model)

    def handle(
        self, body: bytes, content_type: str | None, accept: str | None, context: Context
    ) -> tuple[Body, str]:
        if not content_type:
            content_type = self.base.guess_content_type(body) if self.base else registry.JSON
        if not accept or accept == "*/*":
            accept = self.options.default_accept or registry.JSON
        data: bytes | str = body
        if registry.canonical(content_type) in _TEXT_TYPES:
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"Body is not valid UTF-8: {exc}") from None
        fns = self._fns
        if "transform_fn" in fns:
            result = self._call(
                "transform_fn", self._model, data, content_type, accept, ctx=context
            )
        else:
            if "input_fn" in fns:
                decoded = self._call("input_fn", data, content_type, ctx=context)
            else:
                decoded = self.default_input_fn(data, content_type)
            if "predict_fn" in fns:
                prediction = self._call("predict_fn", decoded, self._model, ctx=context)
            else:
                prediction = self.default_predict_fn(decoded, self._model)
            if "output_fn" in fns:
                result = self._call("output_fn", prediction, accept, ctx=context)
            elif is_stream(prediction):
                # A token streamer's predict_fn: its chunks are the answer.
                streamed = StreamedBody(prediction, f"predict_fn in {self._label}")
                return streamed, accept_media(accept)
            else:
                result = self.default_output_fn(prediction, accept)
        return self._response(result, accept)

    def _response(self, result: Any, accept: str) -> tuple[Body, str]:
        media = accept_media(accept)
        if isinstance(result, tuple) and len(result) == 2:
            result, returned_type = result
            media = returned_type or media
        if isinstance(result, str):
            return result.encode(), media
        if isinstance(result, bytes | bytearray | memoryview):
            return bytes(result), media
        where = "transform_fn" if "transform_fn" in self._fns else "output_fn"
        if is_stream(result):
            return StreamedBody(result, f"{where} in {self._label}"), media
        raise InferenceError(
            f"{where} in {self._label} returned {type(result).__name__}: "
            "return bytes, str, (body, content_type), or an iterator of bytes/str chunks"
        )

    # --- toolkit defaults -------------------------------------------------------------

    def default_input_fn(self, data: bytes | str, content_type: str) -> Any:
        """The toolkit's decoders, plus JSON Lines and libsvm from our codecs."""
        media = registry.canonical(content_type)
        raw = data.encode() if isinstance(data, str) else data
        if not raw:
            raise InvalidInput("Empty request body: send at least one record")
        dtype = self.base.input_dtype if self.base else np.float64
        if media == registry.JSON:
            doc = json_codec.loads(data)
            if isinstance(doc, dict) and ("instances" in doc or "features" in doc):
                decoded: Any = json_codec.rows_to_array(json_codec.extract_rows(doc), dtype, "JSON")
            else:
                decoded = np.array(doc)
        elif media == registry.CSV:
            decoded = csv_codec.decode(raw, dtype)
        elif media == registry.NPY:
            decoded = npy_codec.load(raw)
        elif media == registry.JSONLINES:
            decoded = jsonlines_codec.decode(raw, dtype)
        elif media == registry.LIBSVM:
            decoded = libsvm_codec.decode(raw, dtype)
        elif media == recordio_codec.MEDIA_TYPE:
            decoded = recordio_codec.decode(raw, dtype)
        else:
            raise UnsupportedContentType(content_type, _INPUT_TYPES)
        return self.base.adapt(media, decoded) if self.base else decoded

    def default_predict_fn(self, data: Any, model: Any) -> Any:
        """The framework's predict: base runtime, a Booster's inplace_predict, or .predict."""
        if self.base is not None and model is not None and model is self.base.model:
            return self.base.predict(data)
        # A runtime may know how to predict with a model it did not load itself (e.g.
        # an eager torch module from model_fn needs eval mode and no_grad).
        predict_with = getattr(self.base, "predict_with", None)
        if callable(predict_with) and model is not None:
            return predict_with(model, data)
        if type(model).__module__.startswith("xgboost") and hasattr(model, "inplace_predict"):
            if type(data).__name__ == "DMatrix":
                return model.predict(data)
            return model.inplace_predict(data)
        predict = getattr(model, "predict", None)
        if callable(predict):
            return predict(data)
        raise InferenceError(
            f"{self._label} defines no predict_fn and the model from model_fn "
            f"({type(model).__name__}) has no predict method: define predict_fn(data, model)"
        )

    def default_output_fn(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        """The toolkit's encoders: first of JSON/CSV/NPY (and JSON Lines) in Accept."""
        media = choose_accept(accept, _OUTPUT_TYPES, registry.JSON)
        if media == registry.JSON:
            return json.dumps(prediction, default=json_codec.default).encode(), media
        if media == registry.CSV:
            return csv_codec.encode(prediction, trailing_newline=self.options.batch), media
        if media == registry.JSONLINES:
            return jsonlines_codec.encode(prediction, trailing_newline=self.options.batch), media
        return npy_codec.encode(prediction), media

    def unload(self) -> None:
        self._model = None
        if self.base is not None:
            self.base.unload()
        super().unload()
