"""XGBoost runtime, like SageMaker's XGBoost container in algorithm mode.

Load: `xgboost-model` (or a *.json/*.ubj/*.bst/*.model file, or a pickled Booster);
pickles are tried first as older SageMaker images pickle the Booster. Predict:
`Booster.inplace_predict`, several times faster than building a DMatrix per request,
after checking the feature count so a mismatch is a clear 400 rather than XGBoost's
internal error; dense float32 input takes the same C call without the wrapper's
per-call cost (`xgboost_fast`, bit-identical answers). Output: CSV by default, in
the formats of SageMaker's container, including selectable outputs
(`SAGEMAKER_INFERENCE_OUTPUT`); see `xgboost_output`.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike

from modelhost.codecs import recordio, registry
from modelhost.codecs.media import choose_accept
from modelhost.errors import InvalidInput, ModelLoadError, PredictionFailed
from modelhost.frameworks import xgboost_output
from modelhost.frameworks.base import Runtime, describe_files, model_files
from modelhost.frameworks.xgboost_fast import FastPredictor

log = logging.getLogger("modelhost.frameworks")

MODEL_FILE = "xgboost-model"
NATIVE_SUFFIXES = (".json", ".ubj", ".bst", ".model", ".bin")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_SNIFF_BYTES = 512
# SageMaker's XGBoost container also reads recordio-protobuf, which the shared codec
# registry leaves out (no other runtime takes it).
_DECODERS = {**registry.DECODERS, recordio.MEDIA_TYPE: recordio.decode}
_SPARSE = (registry.LIBSVM, recordio.MEDIA_TYPE)


def is_pickled_booster(path: Path) -> bool:
    """True when a pickle's first bytes name `xgboost.core.Booster` (no unpickling)."""
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    return head[:1] == b"\x80" and b"xgboost.core" in head and b"Booster" in head


def _looks_like_xgboost_json(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    return b'"learner"' in head


class XGBoostRuntime(Runtime):
    """Serves an XGBoost Booster (binary, UBJSON, JSON or pickled).

    `MH_INSTANCE_RUNTIME=xgboost`, or chosen by auto-detection when the model directory
    holds `xgboost-model`, a native model file, or a pickled Booster. Inputs: CSV,
    libsvm, JSON, JSON Lines, NPY; a request without Content-Type is libsvm when the
    body contains ':' and CSV otherwise (SageMaker's container always assumes libsvm,
    but CSV is what most clients send without thinking about the header).
    """

    name: ClassVar[str] = "xgboost"
    tree_framework: ClassVar[str | None] = "XGBOOST"
    content_types = (
        registry.CSV,
        registry.LIBSVM,
        "text/x-libsvm",
        registry.JSON,
        registry.JSONLINES,
        registry.NPY,
        recordio.MEDIA_TYPE,
    )
    # Without selectable outputs; the loaded model's plan decides (see `response_type`).
    accept_types = xgboost_output.DEFAULT_ACCEPT_TYPES
    default_accept = registry.CSV
    input_dtype: ClassVar[DTypeLike] = np.float32
    # One-row inplace_predict on a 100-tree model is ~70 µs and a 64 KiB CSV body (~50
    # rows of 69 features) stays under ~1 ms, cheaper than a thread hop per request.
    inline_max_bytes = 64 * 1024
    can_batch = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._booster: Any = None
        self._fast: FastPredictor | None = None
        self._n_features = 0
        self._xgb: Any = None
        self._plan = xgboost_output.score_plan(batch=self.options.batch)

    @classmethod
    def detect(cls, model_dir: Path) -> bool:
        for path in model_files(model_dir):
            suffix = path.suffix.lower()
            if path.name == MODEL_FILE or suffix in (".ubj", ".bst", ".model"):
                return True
            if suffix == ".json" and _looks_like_xgboost_json(path):
                return True
            if suffix in PICKLE_SUFFIXES and is_pickled_booster(path):
                return True
        return False

    @property
    def model(self) -> Any:
        return self._booster

    @property
    def num_features(self) -> int:
        """Feature count the loaded booster expects."""
        return self._n_features

    def load(self, model_dir: Path) -> None:
        import xgboost  # deferred: a 0.6 s import that must not delay the socket bind

        self._xgb = xgboost
        path = self._find_model_file(model_dir)
        booster = self._load_file(path)
        # Parent sets OMP_NUM_THREADS to this instance's CPU share; XGBoost's own
        # default would use every core and fight the other instances.
        booster.set_param({"nthread": self.options.nthread})
        self._plan = self._output_plan(booster)
        self._booster = booster
        self._n_features = int(booster.num_features())
        self._fast = _fast_predictor(booster)
        self.model_dir = model_dir

    def _output_plan(self, booster: Any) -> xgboost_output.OutputPlan:
        # Resolved here, once: a request only looks up the encoder of its media type.
        keys = self.options.inference_output
        if not keys:
            return xgboost_output.score_plan(batch=self.options.batch)
        objective, num_class = xgboost_output.booster_objective(booster)
        return xgboost_output.selectable_plan(
            objective,
            num_class,
            keys,
            supported=self.options.inference_supported,
            batch=self.options.batch,
        )

    def _find_model_file(self, model_dir: Path) -> Path:
        files = model_files(model_dir)
        by_name = {p.name: p for p in files}
        if MODEL_FILE in by_name:
            return by_name[MODEL_FILE]
        for suffixes in (NATIVE_SUFFIXES, PICKLE_SUFFIXES):
            for path in files:
                if path.suffix.lower() in suffixes:
                    return path
        # SageMaker loads whatever single file it is given; we do so only for a name
        # without an extension, so `notes.txt` gets the clear message below.
        if len(files) == 1 and not files[0].suffix:
            return files[0]
        raise ModelLoadError(
            f"No model file found in {model_dir}: expected '{MODEL_FILE}' or a "
            f"*.json/*.ubj file for the xgboost runtime; files present: "
            f"{describe_files(model_dir)}"
        )

    def _load_file(self, path: Path) -> Any:
        xgb = self._xgb
        data = path.read_bytes()
        if path.suffix.lower() == ".joblib" or data[:1] == b"\x80":
            return self._booster_from_pickle(path, data)
        booster = xgb.Booster()
        try:
            # Raw bytes, not the path: XGBoost 3 warns "Unknown file format" for
            # extension-less names such as `xgboost-model`.
            booster.load_model(bytearray(data))
        except xgb.core.XGBoostError as exc:
            raise ModelLoadError(
                f"{path.name} is not a model xgboost {xgb.__version__} can load "
                f"({_first_line(exc)}): save it with booster.save_model('model.ubj') "
                "or pickle the Booster"
            ) from None
        return booster

    def _booster_from_pickle(self, path: Path, data: bytes) -> Any:
        xgb = self._xgb
        try:
            if path.suffix.lower() == ".joblib":
                import joblib

                obj = joblib.load(path)
            else:
                obj = pickle.loads(data)
        except Exception as exc:
            raise ModelLoadError(
                f"{path.name} could not be unpickled: {type(exc).__name__}: {exc}"
            ) from None
        if isinstance(obj, xgb.Booster):
            return obj
        if isinstance(obj, xgb.XGBModel):
            # A scikit-learn wrapper: serve its Booster, as algorithm mode does (so
            # classifiers answer probabilities, not labels).
            return obj.get_booster()
        raise ModelLoadError(
            f"{path.name} holds a pickled {type(obj).__module__}.{type(obj).__name__}, "
            "not an xgboost Booster: use MH_INSTANCE_RUNTIME=sklearn or save the Booster"
        )

    def guess_content_type(self, body: bytes) -> str:
        return registry.LIBSVM if b":" in body else registry.CSV

    def decode(self, body: bytes, content_type: str | None) -> tuple[str, Any]:
        if not body:
            raise InvalidInput("Empty request body: send at least one record")
        media, decoder = registry.decoder_for(
            content_type or self.guess_content_type(body), self.content_types, _DECODERS
        )
        return media, decoder(body, self.input_dtype)

    def response_type(self, accept: str | None) -> str:
        default = self.options.default_accept or self.default_accept
        return choose_accept(accept, self._plan.accept_types, default)

    def encode(self, prediction: Any, media: str) -> bytes:
        return self._plan.encoders[media](prediction)

    def validate(self, data: Any) -> None:
        if isinstance(data, self._xgb.DMatrix):
            return
        width = data.shape[-1] if getattr(data, "ndim", 2) >= 1 else 0
        if width != self._n_features:
            raise InvalidInput(
                f"Feature count mismatch: the model expects {self._n_features} features, "
                f"row 1 has {width}"
            )

    def batch_rows(self, data: Any) -> int:
        # Only plain float32 matrices are stacked: a tree ensemble scores each row on
        # its own, so one call on stacked rows answers every row exactly as alone.
        if type(data) is np.ndarray and data.ndim == 2 and data.dtype == np.float32:
            return int(data.shape[0])
        return 0

    def predict(self, data: Any) -> Any:
        booster = self._booster
        if isinstance(data, self._xgb.DMatrix):
            return booster.predict(data, validate_features=False)
        if getattr(data, "ndim", 2) == 1:
            data = np.asarray(data).reshape(1, -1)
        self.validate(data)
        if (compiled := self.compiled) is not None and (out := compiled.predict(data)) is not None:
            return out
        fast = self._fast
        if fast is not None:
            out = fast.predict(data)
            if out is not None:
                return out
        try:
            return booster.inplace_predict(data, validate_features=False)
        except self._xgb.core.XGBoostError as exc:
            raise PredictionFailed(f"Prediction failed: {_first_line(exc)}") from None

    def adapt(self, media: str, data: Any) -> Any:
        # libsvm and sparse recordio rows only list present features, so a narrower
        # array is fine: the absent trailing features are missing values.
        if media not in _SPARSE:
            return data
        missing = self._n_features - data.shape[1]
        if missing <= 0:
            return data
        pad = np.full((data.shape[0], missing), np.nan, dtype=data.dtype)
        return np.hstack([data, pad])

    def unload(self) -> None:
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        self._booster = None
        super().unload()


def _fast_predictor(booster: Any) -> FastPredictor | None:
    # An XGBoost without this C API (or a changed private Python module) keeps the
    # library's own path: slower, never wrong.
    try:
        return FastPredictor(booster)
    except Exception as exc:
        log.warning("xgboost's fast predict path is unavailable (%s); using inplace_predict", exc)
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # XGBoost errors start with "[time] /path/file.cc:123: message" and carry a C++
    # stack trace; keep the message only.
    first = text.splitlines()[0] if text else type(exc).__name__
    if ": " in first and first.startswith("["):
        first = first.split(": ", 1)[1]
    return first
