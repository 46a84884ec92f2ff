"""LightGBM runtime: a Booster from LightGBM's text model format (or a pickle of one).

Load: `model.txt`, a `*.lgb`/`*.lgbm` file, or any top-level file that starts with
LightGBM's `tree` header; else a pickle/joblib file holding a `lightgbm.Booster` or an
`LGBMModel` (served through its Booster, so classifiers answer probabilities, as the
XGBoost runtime does for its wrappers). The text is checked in Python before LightGBM
parses it: LightGBM parses trees in an OpenMP loop and aborts the whole process (or
segfaults) on a truncated or malformed file, which would leave only a crash in the log
instead of a FailureReason.

Predict: `Booster.predict(X, num_threads=nthread)` after a feature-count check, so a
mismatch is a clear 400; dense float input takes LightGBM's own C predict without the
wrapper's per-call cost (`lightgbm_fast`, bit-identical answers). Answers are shaped like
the XGBoost runtime's, so clients get the same bodies from either tree library.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

from modelhost.codecs import registry
from modelhost.errors import InvalidInput, ModelLoadError, PredictionFailed
from modelhost.frameworks.base import Runtime, describe_files, model_files
from modelhost.frameworks.lightgbm_fast import FastPredictor, fast_predictor

PREFERRED = "model.txt"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_SNIFF_BYTES = 512
_TREE_HEADER = re.compile(rb"^Tree=\d+\r?$", re.M)
_INT = rb"-?[0-9]+"
_NUM = rb"(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?i:inf|nan))"
_INTS = re.compile(rb" *(?:" + _INT + rb"(?: +" + _INT + rb")*)? *\r?")
_NUMS = re.compile(rb" *(?:" + _NUM + rb"(?: +" + _NUM + rb")*)? *\r?")
_KEY = re.compile(rb"[a-z_]+")
_RESAVE = "re-save it with booster.save_model('model.txt')"
_PARAM_LINE = re.compile(rb"\[[A-Za-z0-9_]+: [^\n]*\]\r?")
# The tree format as LightGBM's Tree(const char*) reads it: which keys hold integers,
# which it requires, and how many values each array must hold for num_leaves = n. It
# reads them into fixed-size buffers inside an OpenMP loop, where a missing key or a
# wrong count aborts the process.
_INT_KEYS = frozenset(
    b"num_leaves num_cat split_feature decision_type left_child right_child leaf_count "
    b"internal_count is_linear cat_boundaries cat_threshold num_features leaf_features".split()
)
_REQUIRED_SPLIT = (b"left_child", b"right_child", b"split_feature", b"threshold")
_PER_SPLIT = (
    *_REQUIRED_SPLIT,
    *(b"split_gain", b"decision_type", b"internal_value", b"internal_weight", b"internal_count"),
)
_PER_LEAF = (b"leaf_weight", b"leaf_count")


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


def check_model_text(data: bytes, name: str) -> None:
    """Raise `ModelLoadError` for model text LightGBM's parser would crash on.

    LightGBM parses trees in an OpenMP loop and trusts what it reads: a truncated or
    edited file aborts (or segfaults) the whole process instead of raising, and a bad
    child link makes predict loop forever. This checks what it trusts: the end markers
    whose absence means the file was cut short, the header's counts and `tree_sizes`
    offsets, every tree line (numbers, array lengths, indices, tree shape) and the
    parameters section. Linear in the file size, mostly C-speed regexes and numpy.
    """
    if not data.startswith((b"tree\n", b"tree\r\n")):
        raise ModelLoadError(
            f"{name} is not a LightGBM text model: it does not start with LightGBM's 'tree' "
            f"header; {_RESAVE}"
        )
    end = data.find(b"\nend of trees")
    params = data.find(b"\nparameters:", max(end, 0))
    if end < 0 or (params >= 0 and data.find(b"\nend of parameters", params) < 0):
        marker = "end of trees" if end < 0 else "end of parameters"
        raise ModelLoadError(
            f"{name} is truncated: LightGBM's '{marker}' line is missing; upload the "
            "complete file written by booster.save_model('model.txt')"
        )
    starts = [m.start() for m in _TREE_HEADER.finditer(data, 0, end + 1)]
    problem = _header_problem(data[: starts[0] if starts else end], starts)
    if problem:
        raise ModelLoadError(f"{name} is corrupt: {problem}; {_RESAVE}")
    n_features = int(_header_value(data[: starts[0] if starts else end], b"max_feature_idx")) + 1
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else end + 1
        problem = _tree_problem(data[start:stop], n_features)
        if problem:
            raise ModelLoadError(f"{name} is corrupt: tree {i} {problem}; {_RESAVE}")
    if params >= 0:
        for line in data[params + 12 : data.find(b"\nend of parameters", params)].splitlines():
            if line.strip() and not _PARAM_LINE.fullmatch(line):
                shown = line[:60].decode("utf-8", "replace")
                raise ModelLoadError(f"{name} is corrupt: bad parameter line {shown!r}; {_RESAVE}")


def _header_value(header: bytes, key: bytes) -> bytes:
    found = re.search(rb"^" + key + rb"=(.*?)\r?$", header, re.M)
    return found.group(1) if found else b"0"


def _header_problem(header: bytes, starts: list[int]) -> str | None:
    """What is wrong with the lines before the first tree, or None."""
    counts = [_header_value(header, k) for k in (b"num_class", b"num_tree_per_iteration")]
    counts.append(_header_value(header, b"max_feature_idx"))
    if not all(c.isdigit() for c in counts):
        return "num_class, num_tree_per_iteration or max_feature_idx is not a number"
    if int(counts[1]) > int(counts[0]):
        # Predict would write one output per tree of an iteration into num_class slots.
        return "num_tree_per_iteration is larger than num_class"
    sizes = re.search(rb"^tree_sizes=(.*?)\r?$", header, re.M)
    if sizes is None:
        return None
    tokens = sizes.group(1).split()
    if len(tokens) != len(starts):
        return f"the header lists {len(tokens)} trees, the file holds {len(starts)}"
    offset = starts[0] if starts else 0
    for i, size in enumerate(tokens):
        if offset != starts[i] or not size.isdigit():
            return f"tree {i} is not where the header's tree_sizes puts it (edited or cut)"
        offset += int(size)
    return None


def _tree_problem(block: bytes, n_features: int) -> str | None:
    """What is wrong with one `Tree=` block, or None."""
    fields: dict[bytes, list[bytes]] = {}
    lines = block.splitlines()[1:]
    if b"" not in lines:
        return "does not end with a blank line"  # LightGBM would read on into the next
    for line in lines[: lines.index(b"")]:
        key, sep, value = line.partition(b"=")
        values = _INTS if key in _INT_KEYS else _NUMS
        if not sep or not _KEY.fullmatch(key) or not values.fullmatch(value):
            return f"has a malformed line {line[:60].decode('utf-8', 'replace')!r}"
        fields[key] = value.split()
    for key in (b"num_leaves", b"num_cat", b"leaf_value"):
        if key not in fields:
            return f"lacks {key.decode()}"
    n, cats = (int((fields[k] or [b"-1"])[0]) for k in (b"num_leaves", b"num_cat"))
    if n < 1 or cats < 0:
        return f"has num_leaves={n} and num_cat={cats}"
    wanted = {b"leaf_value": n}
    if n > 1 or fields.get(b"is_linear", [b"0"]) != [b"0"]:
        missing = [k.decode() for k in _REQUIRED_SPLIT if k not in fields]
        if missing:
            return f"lacks {', '.join(missing)}"
        wanted.update({**dict.fromkeys(_PER_SPLIT, n - 1), **dict.fromkeys(_PER_LEAF, n)})
        wanted.update({b"leaf_const": n, b"num_features": n})
        per_leaf = fields.get(b"num_features", [])
        linear_total = sum(int(v) for v in per_leaf) if len(per_leaf) == n else 0
        wanted.update({b"leaf_features": linear_total, b"leaf_coeff": linear_total})
        if cats > 0:
            bounds = fields.get(b"cat_boundaries") or [b"-1"]
            if b"cat_threshold" not in fields or int(bounds[-1]) < 0:
                return "lacks cat_boundaries or cat_threshold"
            wanted.update({b"cat_boundaries": cats + 1, b"cat_threshold": int(bounds[-1])})
    for key, count in wanted.items():
        got = len(fields[key]) if key in fields else count
        if got != count:
            return f"has {got} {key.decode()} values, {count} expected (num_leaves={n})"
    return _index_problem(fields, n, cats, n_features)


def _index_problem(
    fields: dict[bytes, list[bytes]], n: int, cats: int, n_features: int
) -> str | None:
    """Indices LightGBM follows at predict time without bounds checks."""

    def ints(key: bytes) -> NDArray[np.int64]:
        return np.array(fields.get(key, []), dtype=np.int64)

    for key in (b"split_feature", b"leaf_features"):
        used = ints(key)
        if used.size and (used.min() < 0 or used.max() >= n_features):
            return f"uses a feature outside 0..{n_features - 1} ({key.decode()})"
    if n <= 1:
        return None
    # Every node but the root, and every leaf (as -1 - leaf), is a child exactly once:
    # then walking down from the root ends, where an edited link could loop forever.
    children = np.sort(np.concatenate([ints(b"left_child"), ints(b"right_child")]))
    if not np.array_equal(children, np.r_[np.arange(-n, 0), np.arange(1, n - 1)]):
        return "is not a tree (its child links repeat, skip or loop)"
    categorical = (ints(b"decision_type") & 1).astype(bool)
    if categorical.any():
        bounds = ints(b"cat_boundaries")
        lists = np.array(fields[b"threshold"], dtype=np.float64)[categorical]
        if cats == 0 or bounds[0] != 0 or (np.diff(bounds) < 0).any():
            return "has malformed cat_boundaries"
        if not np.isin(lists, np.arange(cats)).all():
            return "has a categorical split pointing outside its category lists"
    return None


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

    def predict(self, data: Any) -> Any:
        if isinstance(data, list | tuple):
            data = np.asarray(data, dtype=np.float64)
        # Arrays are checked here; anything else with a shape (a pandas DataFrame or a
        # scipy matrix from a script's input_fn) goes to LightGBM as it is.
        if isinstance(data, np.ndarray) and data.ndim == 1:
            data = data.reshape(1, -1)
        shape = getattr(data, "shape", None)
        if shape is not None and len(shape) != 2:
            raise InvalidInput(f"Expected rows of features (a 2-D array), got {len(shape)}-D")
        if shape is not None and shape[1] != self._n_features:
            raise InvalidInput(
                f"Feature count mismatch: the model expects {self._n_features} features, "
                f"row 1 has {shape[1]}"
            )
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
