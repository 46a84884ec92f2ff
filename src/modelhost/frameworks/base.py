"""The runtime contract every built-in framework implements, and the per-request context.

A runtime is one loaded model plus the knowledge of how its framework decodes,
predicts and encodes. The container calls `load` once (off the event loop), then
`handle` per request; `handle` may run on the event loop for small bodies (see
`inline_max_bytes`), so runtimes must not block for long on small inputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import DTypeLike, NDArray

from modelhost.codecs import registry
from modelhost.codecs.media import choose_accept
from modelhost.errors import InvalidInput, ModelLoadError
from modelhost.frameworks.streaming import Body


class CompiledForm(Protocol):
    """A model's compiled form as a runtime uses it (`compiled_predictor.CompiledPredictor`)."""

    def predict(self, data: Any) -> NDArray[Any] | None: ...

    def matches(self, framework_predict: Callable[[NDArray[Any]], Any]) -> bool: ...


@dataclass(frozen=True)
class RuntimeOptions:
    """Instance-wide settings a runtime needs; the container fills them from the env.

    `default_accept` is `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` (None: the runtime's own
    default), `batch` is `SAGEMAKER_BATCH` (adds a trailing newline to line formats),
    `nthread` is `OMP_NUM_THREADS`. `program` is `SAGEMAKER_PROGRAM` without `.py`
    (None: not set, look for `inference.py` but do not require it) and `submit_dir` is
    `SAGEMAKER_SUBMIT_DIRECTORY` (None: `<model_dir>/code`). `inference_output` and
    `inference_supported` are `SAGEMAKER_INFERENCE_OUTPUT`/`_SUPPORTED` split on commas
    (XGBoost's selectable outputs). `packages_dir` is `MH_INSTANCE_PACKAGES_DIR` (None:
    `~/.modelhost/packages`), where script mode installs `code/requirements.txt`, with
    pip limited to `pip_timeout_s` (`MH_INSTANCE_PIP_TIMEOUT_S`), the directory bounded by
    `packages_cache_bytes` (`MH_INSTANCE_PACKAGES_CACHE_BYTES`; 0: unbounded). `onnx_output` is
    `MH_INSTANCE_ONNX_OUTPUT` (the ONNX graph output to answer with; None: the first).
    """

    default_accept: str | None = None
    batch: bool = False
    nthread: int = 1
    program: str | None = None
    submit_dir: Path | None = None
    inference_output: tuple[str, ...] | None = None
    inference_supported: tuple[str, ...] | None = None
    packages_dir: Path | None = None
    pip_timeout_s: float = 600.0
    packages_cache_bytes: int = 0  # >0: bound the packages dir (store/cache_bound.py)
    onnx_output: str | None = None
    # The instance was given a GPU (CUDA_VISIBLE_DEVICES, resources/gpus.py).
    gpu: bool = False


@dataclass
class Context:
    """What a script-mode handler receives as `context` (the toolkit's optional argument).

    Read `custom_attributes` for the request's `X-Amzn-SageMaker-Custom-Attributes`;
    to send the header back, set `context.response_custom_attributes = "..."` (or call
    `set_response_custom_attributes`). Without that the header is not echoed.
    `request_headers` holds every request header (lower-case names).
    """

    model_dir: str
    custom_attributes: str | None = None
    request_headers: Mapping[str, str] = field(default_factory=dict)
    response_custom_attributes: str | None = None

    def set_response_custom_attributes(self, value: str | None) -> None:
        """Set the `X-Amzn-SageMaker-Custom-Attributes` header of the response."""
        self.response_custom_attributes = value

    def get_request_header(self, name: str) -> str | None:
        """A request header by case-insensitive name, or None."""
        return self.request_headers.get(name.lower())

    @property
    def system_properties(self) -> dict[str, Any]:
        """Toolkit compatibility: `context.system_properties["model_dir"]`."""
        return {"model_dir": self.model_dir, "gpu_id": None}


def model_files(model_dir: Path) -> list[Path]:
    """Regular top-level files, sorted, skipping hidden ones (as SageMaker does)."""
    try:
        entries = sorted(model_dir.iterdir())
    except FileNotFoundError:
        raise ModelLoadError(
            f"Model directory {model_dir} does not exist: check the model's ModelDataUrl"
        ) from None
    return [p for p in entries if p.is_file() and not p.name.startswith(".")]


def describe_files(model_dir: Path) -> str:
    """`a.txt, code/` for error messages: what the user actually shipped."""
    try:
        names = sorted(
            p.name + ("/" if p.is_dir() else "")
            for p in model_dir.iterdir()
            if not p.name.startswith(".")
        )
    except FileNotFoundError:
        return "(directory missing)"
    return ", ".join(names) if names else "(none)"


class Runtime(ABC):
    """A framework runtime: load a model, predict on arrays, and handle raw requests.

    Extension point: subclass, set `name`, the supported media types and
    `default_accept`, implement `load`/`predict` (and `detect` for auto-selection),
    then register it in `frameworks.registry.RUNTIMES`. The default `handle` does
    decode → `predict` → encode with the codec registry; override it only when a
    framework needs a different request flow (script mode does).
    """

    name: ClassVar[str] = "base"
    content_types: ClassVar[Sequence[str]] = (
        registry.CSV,
        registry.JSON,
        registry.JSONLINES,
        registry.NPY,
    )
    accept_types: ClassVar[Sequence[str]] = (
        registry.JSON,
        registry.CSV,
        registry.JSONLINES,
        registry.NPY,
    )
    encoders: ClassVar[Mapping[str, registry.Encoder]] = registry.ENCODERS
    default_accept: ClassVar[str] = registry.JSON
    input_dtype: ClassVar[DTypeLike] = np.float64
    # Bodies up to this size are handled on the event loop (no thread hop). 0 means
    # always use the worker thread, the safe choice when predict cost is unknown.
    inline_max_bytes: ClassVar[int] = 0
    # True when `predict` on rows stacked from several requests gives each request's
    # rows exactly the answer it would get alone (row-independent models), so the
    # container may merge concurrent requests (see `container.batching`). Off by
    # default: script mode and any runtime with a custom `handle` must never batch.
    can_batch: ClassVar[bool] = False
    # The compiler's name for this runtime's models (`InputConfig.Framework`) when the
    # compiled tier may compile them (container/compile_tier.py); None: never.
    tree_framework: ClassVar[str | None] = None

    def __init__(self, options: RuntimeOptions | None = None) -> None:
        self.options = options or RuntimeOptions()
        self.model_dir: Path | None = None
        # The model's compiled form, asked first by `predict` once attached.
        self.compiled: CompiledForm | None = None

    @classmethod
    def detect(cls, model_dir: Path) -> bool:
        """True when `model_dir` looks like this framework's artifact (cheap: names/sniffs)."""
        return False

    @abstractmethod
    def load(self, model_dir: Path) -> None:
        """Load the model; raise `ModelLoadError` with an actionable message on failure."""

    @abstractmethod
    def predict(self, data: Any) -> Any:
        """Predict on decoded input (normally a 2-D array); return an array."""

    @property
    def model(self) -> Any:
        """The framework object (Booster, estimator); script mode hands it to predict_fn."""
        raise NotImplementedError

    def unload(self) -> None:
        """Release the model. The default drops references and lets GC do the rest."""
        self.model_dir = None
        self.compiled = None

    def release_native(self) -> None:
        """Free what must never be freed under a call in flight (a dlopened library), before
        `unload`; the caller guarantees no call is running (a multi-model instance unloading
        an idle model). By default nothing: `unload` drops references and GC does the rest."""
        return None

    def attach_compiled(self, predictor: CompiledForm) -> bool:
        """Answer with `predictor` from now on, if this runtime still serves a model and
        its own predict gives the check rows the same bits; True when attached."""
        if self.tree_framework is None or self.model_dir is None:
            return False
        if not predictor.matches(self.predict):
            return False
        self.compiled = predictor
        return True

    def adapt(self, media: str, data: Any) -> Any:
        """Fit decoded input to the model before predict (e.g. pad sparse rows)."""
        return data

    def guess_content_type(self, body: bytes) -> str:
        """Media type to assume when the request has no Content-Type."""
        return registry.JSON if body.lstrip()[:1] in (b"[", b"{") else registry.CSV

    def decode(self, body: bytes, content_type: str | None) -> tuple[str, NDArray[Any]]:
        """Decode a body with the runtime's supported decoders."""
        if not body:
            raise InvalidInput("Empty request body: send at least one record")
        media, decoder = registry.decoder_for(
            content_type or self.guess_content_type(body), self.content_types
        )
        return media, decoder(body, self.input_dtype)

    def response_type(self, accept: str | None) -> str:
        """The media type to answer with (406 when nothing in Accept is supported)."""
        default = self.options.default_accept or self.default_accept
        return choose_accept(accept, self.accept_types, default)

    def encode(self, prediction: Any, media: str) -> bytes:
        """Encode a prediction as `media` (already chosen by `response_type`)."""
        encoder = self.encoders[media]
        if self.options.batch and media in (registry.CSV, registry.JSONLINES):
            return encoder(prediction) + b"\n"
        return encoder(prediction)

    def prepare(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[Any, str]:
        """Everything before predict: (model input, response media type).

        Raises the request's own error (415/406/400), which is what lets the batcher
        validate each request alone before merging it with others.
        """
        # Decode before checking Accept (415 wins over 406, as in SageMaker's
        # containers), but check Accept before predicting so a bad one costs no predict.
        media, data = self.decode(body, content_type)
        data = self.adapt(media, data)
        out_media = self.response_type(accept)
        self.validate(data)
        return data, out_media

    def validate(self, data: Any) -> None:
        """Reject input the model cannot take (e.g. wrong feature count) before predict."""
        return None  # the default accepts anything; predict reports its own errors

    def batch_rows(self, data: Any) -> int:
        """Rows of `data` when it can join a merged batch, else 0 (predicted alone)."""
        return 0

    def handle(
        self, body: bytes, content_type: str | None, accept: str | None, context: Context
    ) -> tuple[Body, str]:
        """One request: decode → predict → encode. Returns (body, content type); the body
        may be a `StreamedBody`, written as it is produced (script mode's generators)."""
        data, out_media = self.prepare(body, content_type, accept)
        return self.encode(self.predict(data), out_media), out_media
