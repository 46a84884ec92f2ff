"""LightGBM runtime: a Booster from LightGBM's text model format (or a pickle of one).

Load: `model.txt`, a `*.lgb`/`*.lgbm` file, or any top-level file that starts with
LightGBM's `tree` header; else a pickle/joblib file holding a `lightgbm.Booster` or an
`LGBMModel` (served through its Booster, so classifiers answer probabilities, as the
XGBoost runtime does for its wrappers). The text is checked in Python before LightGBM
parses it (`lightgbm_text`: LightGBM aborts the whole process on a malformed file).

Predict: `Booster.predict(X, num_threads=nthread)` after a feature-count check, so a
mismatch is a clear 400; dense float input takes LightGBM's own C predict without the
wrapper's per-call cost (`lightgbm_fast`, bit-identical answers). Concurrent requests
are merged into one predict call by the instance's batcher (`can_batch`, `batch_rows`:
float64 rows and NPY dtypes float32 holds exactly), each answered exactly as alone.
Answers are shaped like the XGBoost runtime's, so clients get the same bodies from either
tree library.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike

from modelhost.codecs import registry
from modelhost.errors import InvalidInput, ModelLoadError, PredictionFailed
from modelhost.frameworks.base import Runtime, describe_files, model_files
from modelhost.frameworks.lightgbm_fast import FastPredictor, fast_predictor
from modelhost.frameworks.lightgbm_text import check_model_text

PREFERRED = "model.txt"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_SNIFF_BYTES = 512
# Input dtypes whose rows may be stacked (see `batch_rows`): float64, and those whose
# every value float32 holds exactly (numpy's safe casts to float32).
_MERGEABLE = frozenset(
    np.dtype(t)
    for t in (np.float64, np.float32, np.float16, np.bool_, np.int8, np.uint8, np.int16, np.uint16)
)


def starts_like_model_text(path: Path) -> bool:
    """True when the file begins with LightGBM's `tree` header line."""
    with path.open("rb") as f:
        head = f.read(6)
    return head.startswith((b"tree\n", b"tree\r\n"))


def is_pickled_lightgbm(path: Path) -> bool:
    """True when a pickle's first bytes hold a LightGBM Booster (no unpickling).

    The first class a pickle names is the pickled object's own, so a scikit-learn
    wrapper (`lightgbm.sklearn`, which holds a Booster further on) does not match.
    """
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    first = re.search(rb"lightgbm\.(\w+)", head)
    return head[:1] == b"\x80" and first is not None and first.group(1) == b"basic"


class LightGBMRuntime(Runtime):
    """Serves a LightGBM Booster (text model file, or a pickled Booster/LGBMModel).

    `Image` naming `lightgbm`/`lgbm`, `MH_INSTANCE_RUNTIME=lightgbm`, or auto-detection of
    a file starting with LightGBM's `tree` header or a pickled Booster.

    In: `text/csv` (no header, no label; empty fields are NaN, LightGBM's missing value),
    `text/libsvm` (absent features are 0, as in LightGBM's own libsvm loader),
    `application/json` (`{"instances": [[…]]}`, `{"features": […]}`, a row or rows),
    `application/jsonlines`, `application/x-npy`. Without a Content-Type: JSON when the
    body starts with `[`/`{`, libsvm when it contains `:`, else CSV. Values are decoded
    as float64, LightGBM's own precision, so the model sees exactly the numbers sent.

    Out (Accept; default `text/csv` or `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`), as the
    XGBoost runtime: `text/csv` one score per line (a row of class probabilities for
    multiclass); `application/json` `{"predictions": [{"score": …}]}`;
    `application/jsonlines` `{"score": …}` per line; `application/x-npy`.
    """

    name: ClassVar[str] = "lightgbm"
    tree_framework: ClassVar[str | None] = "LIGHTGBM"
    content_types = (
        registry.CSV,
        registry.LIBSVM,
        "text/x-libsvm",
        registry.JSON,
        registry.JSONLINES,
        registry.NPY,
    )
    accept_types = (registry.CSV, registry.JSON, registry.JSONLINES, registry.NPY)
    encoders = registry.SCORE_ENCODERS
    default_accept = registry.CSV
    input_dtype: ClassVar[DTypeLike] = np.float64
    # Measured on 2 cores, 100 trees, 69 features: one-row predict ~16 µs, 50 rows
    # ~120 µs; a 64 KiB CSV body (~50 such rows) stays well under a thread hop's cost.
    inline_max_bytes = 64 * 1024
    # Merged predicts answer each request exactly as alone (see `batch_rows`); one merged
    # call on 32 one-row requests costs a few single-row calls (bench/predict_cost.py).
    can_batch = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._booster: Any = None
        self._fast: FastPredictor | None = None
        self._n_features = 0
        self._lgb_error: type[Exception] = RuntimeError

    @classmethod
    def detect(cls, model_dir: Path) -> bool:
        for path in model_files(model_dir):
            if starts_like_model_text(path):
                return True
            if path.suffix.lower() in PICKLE_SUFFIXES and is_pickled_lightgbm(path):
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
        import lightgbm  # deferred: a heavy import that must not delay the socket bind

        path = self._find_model_file(model_dir)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            booster = self._booster_from_pickle(path, lightgbm)
        else:
            data = path.read_bytes()
            check_model_text(data, path.name)
            try:
                booster = lightgbm.Booster(model_str=data.decode("utf-8"))
            except (lightgbm.basic.LightGBMError, ValueError) as exc:  # ValueError: bad UTF-8/JSON
                raise ModelLoadError(
                    f"{path.name} is not a model lightgbm {lightgbm.__version__} can load "
                    f"({_first_line(exc)}): save it with booster.save_model('model.txt')"
                ) from None
        self._booster = booster
        self._n_features = int(booster.num_feature())
        self._fast = fast_predictor(booster, self.options.nthread)
        self._lgb_error = lightgbm.basic.LightGBMError
        self.model_dir = model_dir

    def _find_model_file(self, model_dir: Path) -> Path:
        files = model_files(model_dir)
        by_name = {p.name: p for p in files}
        if PREFERRED in by_name:
            return by_name[PREFERRED]
        for path in files:
            if path.suffix.lower() in (".lgb", ".lgbm"):
                return path
        for path in files:
            if path.suffix.lower() not in PICKLE_SUFFIXES and starts_like_model_text(path):
                return path
        for path in files:
            if path.suffix.lower() in PICKLE_SUFFIXES:
                return path
        raise ModelLoadError(
            f"No model file found in {model_dir}: expected '{PREFERRED}' (written by "
            "booster.save_model), a *.lgb file, or a pickled Booster for the lightgbm "
            f"runtime; files present: {describe_files(model_dir)}"
        )

    def _booster_from_pickle(self, path: Path, lightgbm: Any) -> Any:
        try:
            if path.suffix.lower() == ".joblib":
                import joblib

                obj = joblib.load(path)
            else:
                obj = pickle.loads(path.read_bytes())
        except Exception as exc:
            raise ModelLoadError(
                f"{path.name} could not be unpickled: {type(exc).__name__}: {exc}"
            ) from None
        if isinstance(obj, lightgbm.Booster):
            return obj
        if isinstance(obj, lightgbm.LGBMModel):
            try:
                return obj.booster_
            except lightgbm.compat.LGBMNotFittedError:
                raise ModelLoadError(
                    f"{path.name} holds an unfitted {type(obj).__name__}: fit it before saving"
                ) from None
        raise ModelLoadError(
            f"{path.name} holds a pickled {type(obj).__module__}.{type(obj).__name__}, not a "
            "lightgbm Booster: use MH_INSTANCE_RUNTIME=sklearn or save booster.save_model"
        )

    def guess_content_type(self, body: bytes) -> str:
        head = body.lstrip()[:1]
        if head in (b"[", b"{"):
            return registry.JSON
        return registry.LIBSVM if b":" in body else registry.CSV

    def adapt(self, media: str, data: Any) -> Any:
        if media != registry.LIBSVM:
            return data
        # A libsvm row lists non-zero features only; LightGBM reads the others as 0.0
        # (not missing), so the codec's NaN placeholders become 0 and the row is padded.
        data = np.where(np.isnan(data), 0.0, data)
        missing = self._n_features - data.shape[1]
        if missing > 0:
            data = np.hstack([data, np.zeros((data.shape[0], missing), dtype=data.dtype)])
        return data

    def validate(self, data: Any) -> None:
        # Arrays are checked here; anything else with a shape (a pandas DataFrame or a
        # scipy matrix from a script's input_fn) goes to LightGBM as it is.
        shape = getattr(data, "shape", None)
        if shape is None:
            return
        if len(shape) != 2:
            raise InvalidInput(f"Expected rows of features (a 2-D array), got {len(shape)}-D")
        if shape[1] != self._n_features:
            raise InvalidInput(
                f"Feature count mismatch: the model expects {self._n_features} features, "
                f"row 1 has {shape[1]}"
            )

    def batch_rows(self, data: Any) -> int:
        # Stacked rows answer exactly as alone: LightGBM scores each row on its own (no
        # state across rows at predict time: trees, linear leaves, categorical splits and
        # the objective's transform are per row) and widens each value to a double. A
        # float32 row widens the same whether np.concatenate or LightGBM does it; other
        # dtypes LightGBM first casts to float32, which is exact for the small ones here
        # and not for int32/int64 (2**24 + 1 becomes 2**24), so those predict alone:
        # stacked with float64 rows they would keep every digit and could score otherwise.
        if type(data) is np.ndarray and data.ndim == 2 and data.dtype in _MERGEABLE:
            return int(data.shape[0])
        return 0

    def predict(self, data: Any) -> Any:
        if isinstance(data, list | tuple):
            data = np.asarray(data, dtype=np.float64)
        if isinstance(data, np.ndarray) and data.ndim == 1:
            data = data.reshape(1, -1)
        self.validate(data)
        if (compiled := self.compiled) is not None and (out := compiled.predict(data)) is not None:
            return out
        fast = self._fast
        if fast is not None and (out := fast.predict(data)) is not None:
            return out
        try:
            # num_threads per call: the parent sets OMP_NUM_THREADS to this instance's
            # CPU share, and LightGBM's default would use every core.
            return self._booster.predict(data, num_threads=self.options.nthread)
        except (self._lgb_error, ValueError, TypeError) as exc:
            raise PredictionFailed(f"Prediction failed: {_first_line(exc)}") from None

    def unload(self) -> None:
        if self._fast is not None:
            self._fast.close()  # frees its FastConfigs now, not at garbage collection
            self._fast = None
        self._booster = None
        super().unload()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
