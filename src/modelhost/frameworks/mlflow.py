"""MLflow runtime: any MLflow model folder served through its `python_function` flavor.

Load: the folder holding the `MLmodel` file — the model directory itself, or the one
sub-folder that holds it when the tarball wraps the folder (`tar czf model.tar.gz model/`)
— with `mlflow.pyfunc.load_model`. Requests follow MLflow's own scoring server (the one
`mlflow models serve` and MLflow's SageMaker image run), using its public parsers, plus the
headerless CSV and bare JSON rows SageMaker clients send. MLflow is imported only here, with
its telemetry off and its import-time noise silenced (`import_mlflow`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelhost.codecs import csv as csv_codec
from modelhost.codecs import json as json_codec
from modelhost.codecs import npy as npy_codec
from modelhost.codecs import registry
from modelhost.codecs.errors import DecodeError, EncodeError
from modelhost.errors import InvalidInput, ModelLoadError, PredictionFailed
from modelhost.frameworks.base import Context, Runtime, describe_files

MLMODEL = "MLmodel"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_NPY_MAGIC = b"\x93NUMPY"
_MAX_MESSAGE = 400


def import_mlflow() -> Any:
    """Import `mlflow.pyfunc` (and its scoring-server parsers) the way a model server should.

    MLflow 3 starts a telemetry client at import that contacts mlflow.org unless
    `MLFLOW_DISABLE_TELEMETRY` is set; an inference instance must not phone home, so it is
    set here unless the user chose otherwise (the model's Environment can set it to false).
    Its import also warns about its own type hints ("Any type hint is inferred as AnyType"),
    which says nothing about the user's model.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*Any type hint is inferred as AnyType", category=UserWarning
        )
        import mlflow.pyfunc
        import mlflow.pyfunc.scoring_server
    return mlflow


def find_model_root(model_dir: Path) -> Path | None:
    """The folder holding `MLmodel`: `model_dir`, or its one sub-folder that has it."""
    if (model_dir / MLMODEL).is_file():
        return model_dir
    try:
        found = [
            p
            for p in sorted(model_dir.iterdir())
            if p.is_dir() and not p.name.startswith(".") and p.name != "code"
            if (p / MLMODEL).is_file()
        ]
    except (FileNotFoundError, NotADirectoryError):
        return None
    if len(found) > 1:
        raise ModelLoadError(
            f"{model_dir} holds several MLflow models ({', '.join(p.name for p in found)}/): "
            "package one model folder per artifact"
        )
    return found[0] if found else None


def _short(error: BaseException | str) -> str:
    message = str(getattr(error, "message", error))  # MlflowException keeps it in .message
    # Schema errors embed the whole input and schema; the cause follows "Error: ".
    cause = message.rsplit("Error: ", 1)[-1] if "Failed to enforce schema" in message else message
    cause = cause.strip().splitlines()[0] if cause.strip() else message
    return cause if len(cause) <= _MAX_MESSAGE else cause[:_MAX_MESSAGE] + "…"


def _mlflow_error() -> type[Exception]:
    from mlflow.exceptions import MlflowException  # loaded by import_mlflow before any use

    return MlflowException


def _pandas() -> Any:
    import pandas  # deferred like mlflow

    return pandas


def _is_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "to_csv")


def _encode_json(prediction: Any) -> bytes:
    from mlflow.pyfunc.scoring_server import predictions_to_json

    out = io.StringIO()
    predictions_to_json(prediction, out)
    return out.getvalue().encode()


def _encode_rows(prediction: Any, media: str) -> bytes:
    if isinstance(prediction, dict):
        raise EncodeError(f"The model returns named outputs: ask for application/json, not {media}")
    if _is_frame(prediction):
        if media == registry.CSV:
            text: str = prediction.to_csv(header=False, index=False, lineterminator="\n")
            return text.rstrip("\n").encode()
        if media == registry.JSONLINES:
            records = prediction.to_dict(orient="records")
            return "\n".join(json.dumps(r, default=json_codec.default) for r in records).encode()
        prediction = prediction.to_numpy()
    return registry.ENCODERS[media](np.asarray(prediction))


def _rows(value: Any) -> list[Any] | None:
    """A JSON list as rows (a flat list of scalars is one row), or None if it is not rows."""
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, list) for v in value):
        return value
    if not any(isinstance(v, list | dict) for v in value):
        return [value]
    return None


class MLflowRuntime(Runtime):
    """Serves an MLflow model (any flavor with `python_function`) like MLflow's scoring server.

    `MH_INSTANCE_RUNTIME=mlflow` (images naming mlflow), or chosen first by auto-detection
    when the model directory, or its single sub-folder, holds an `MLmodel` file.

    In: `application/json` as MLflow's protocol — `{"dataframe_split": {...}}`,
    `{"dataframe_records": [...]}`, `{"instances": ...}`, `{"inputs": ...}`, optional
    `"params"` — and, for SageMaker clients, a bare list of rows (`[[...], ...]`, one flat
    row, or a list of records); `{"instances"/"inputs": [[...]]}` rows are taken in signature
    column order for a column signature. `text/csv`: no header, columns in signature order
    (a first line equal to the signature's names is read as the header MLflow clients send;
    without a signature a non-numeric first line is a header). `application/jsonlines`: one
    row (list) or record (object) per line. `application/x-npy`: a numeric array.
    Column-signature inputs become a DataFrame with the signature's names and dtypes; a
    tensor signature gets an ndarray of its dtype. Out (default `application/json`):
    MLflow's `{"predictions": ...}`; `text/csv` one row per line; JSON Lines (DataFrame rows
    as objects); NPY.
    """

    name: ClassVar[str] = "mlflow"
    encoders: ClassVar[Mapping[str, registry.Encoder]] = {
        registry.JSON: _encode_json,
        **{
            m: partial(_encode_rows, media=m)
            for m in (registry.CSV, registry.JSONLINES, registry.NPY)
        },
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model: Any = None
        self._schema: Any = None
        self._columns: list[Any] | None = None
        self._types: dict[Any, Any] | None = None
        self._tensor: tuple[Any, tuple[int, ...]] | None = None

    @classmethod
    def detect(cls, model_dir: Path) -> bool:
        try:
            return find_model_root(model_dir) is not None
        except ModelLoadError:
            return True  # ambiguous, but MLflow's: load explains

    @property
    def model(self) -> Any:
        return self._model

    def load(self, model_dir: Path) -> None:
        root = find_model_root(model_dir)
        if root is None:
            raise ModelLoadError(
                f"No MLmodel file in {model_dir} or in a folder one level down: save the model "
                "with mlflow.<flavor>.save_model(model, path) and package that folder; files "
                f"present: {describe_files(model_dir)}"
            )
        mlflow = import_mlflow()
        where = root.name if root != model_dir else MLMODEL
        try:
            model = mlflow.pyfunc.load_model(str(root))
        except ModuleNotFoundError as exc:
            raise ModelLoadError(
                f"The MLflow model ({where}) needs the Python package {exc.name!r}, which is not "
                f"installed where modelhost runs: install it (see the model's requirements.txt)"
            ) from None
        except Exception as exc:
            raise ModelLoadError(
                f"The MLflow model ({where}) could not be loaded: {_short(exc)}; check that "
                f"{MLMODEL} and the files it names are intact"
            ) from None
        self._model = model
        self._describe_signature(model.metadata.get_input_schema())
        self.model_dir = model_dir

    def _describe_signature(self, schema: Any) -> None:
        self._schema = schema
        if schema is None or not schema.inputs:
            return
        if schema.is_tensor_spec():
            if len(schema.inputs) == 1 and not schema.has_input_names():
                spec = schema.inputs[0]
                self._tensor = (spec.type, tuple(spec.shape or ()))
            return
        self._columns = schema.input_names()
        try:
            self._types = dict(zip(self._columns, schema.pandas_types(), strict=True))
        except _mlflow_error():
            self._types = None  # Array/Object columns: MLflow's own enforcement converts

    # --- requests -------------------------------------------------------------------------

    def guess_content_type(self, body: bytes) -> str:
        if body.startswith(_NPY_MAGIC):
            return registry.NPY
        return super().guess_content_type(body)

    def handle(
        self, body: bytes, content_type: str | None, accept: str | None, context: Context
    ) -> tuple[bytes, str]:
        if not body:
            raise InvalidInput("Empty request body: send at least one record")
        media, _ = registry.decoder_for(
            content_type or self.guess_content_type(body), self.content_types
        )
        data, params = self.parse(media, body)
        out_media = self.response_type(accept)
        return self.encode(self.predict_with_params(data, params), out_media), out_media

    def parse(self, media: str, body: bytes) -> tuple[Any, dict[str, Any] | None]:
        """The pyfunc input (and MLflow `params`) for a body of canonical type `media`."""
        if media == registry.JSON:
            return self._from_json(json_codec.loads(body))
        if media == registry.CSV:
            return self._from_csv(body), None
        if media == registry.JSONLINES:
            return self._from_jsonlines(body), None
        array = npy_codec.load(body)
        if array.dtype.kind not in "fiub":
            raise DecodeError(f"Malformed NPY body: dtype {array.dtype} is not numeric")
        return self.from_rows(array.reshape(1, -1) if array.ndim == 1 else array), None

    def _from_json(self, doc: Any) -> tuple[Any, dict[str, Any] | None]:
        if isinstance(doc, list):
            if doc and all(isinstance(r, dict) for r in doc):
                return self._mlflow_parse({"dataframe_records": doc}), None
            rows = _rows(doc)
            if rows is not None:
                return self.from_rows(rows), None
        if not isinstance(doc, dict):
            raise DecodeError(
                f"Unsupported JSON shape: expected an object with one of {', '.join(FORMATS)} "
                "(MLflow's scoring protocol) or a list of rows"
            )
        keys = [k for k in FORMATS if k in doc]
        if len(keys) != 1:
            raise DecodeError(
                f"Unsupported JSON shape: expected exactly one of {', '.join(FORMATS)}, "
                f"got keys {sorted(doc)}"
            )
        params = doc.get("params")
        if params is not None and not isinstance(params, dict):
            raise DecodeError('Malformed JSON: "params" must be an object')
        key = keys[0]
        rows = _rows(doc[key]) if key in ("instances", "inputs") else None
        if rows is not None and self._columns is not None:
            # MLflow would hand a column-signature model an ndarray and fail its schema;
            # SageMaker clients send rows in column order, so name them.
            return self.from_rows(rows), params
        return self._mlflow_parse({key: doc[key]}), params

    def _mlflow_parse(self, doc: dict[str, Any]) -> Any:
        from mlflow.pyfunc.scoring_server import infer_and_parse_data

        try:
            return infer_and_parse_data(doc, self._schema)
        except _mlflow_error() as exc:
            raise DecodeError(f"Malformed MLflow input: {_short(exc)}") from None

    def _from_csv(self, body: bytes) -> Any:
        pd = _pandas()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"Body is not valid UTF-8: {exc}") from None
        rows = [r for r in csv.reader(io.StringIO(text)) if r]
        if not rows:
            raise DecodeError("Malformed CSV: the body has no rows")
        columns = self._columns
        if columns is not None:
            header = rows[0] == [str(c) for c in columns]
        else:
            header = not all(_is_number(v) for v in rows[0])
        data = rows[1:] if header else rows
        if not data:
            raise DecodeError("Malformed CSV: the body has a header but no rows")
        self._check_width([len(r) for r in data])
        if self._tensor is not None:
            start = text.index("\n") + 1 if header else 0
            return self.from_rows(csv_codec.decode(text[start:].encode(), self._tensor[0]))
        try:
            return pd.read_csv(
                io.StringIO(text),
                header=0 if header else None,
                names=columns,
                dtype=self._types,
                skip_blank_lines=True,
            )
        except (ValueError, TypeError) as exc:
            raise DecodeError(f"Malformed CSV: {_short(exc)}") from None

    def _from_jsonlines(self, body: bytes) -> Any:
        records = []
        for i, line in enumerate(body.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except (ValueError, UnicodeDecodeError) as exc:
                    raise DecodeError(f"Malformed JSON Lines: line {i}: {exc}") from None
        if records and all(isinstance(r, dict) for r in records):
            return self._mlflow_parse({"dataframe_records": records})
        if not records or not all(isinstance(r, list) for r in records):
            raise DecodeError("Malformed JSON Lines: every line must be a list or every an object")
        return self.from_rows(records)

    def _check_width(self, widths: list[int]) -> None:
        shape = self._tensor[1] if self._tensor is not None else ()
        # A tensor's -1 (any) width, or no signature at all, leaves the check to the model.
        expected = len(self._columns) if self._columns is not None else max(shape[1:2] or (-1,))
        for i, width in enumerate(widths, 1):
            if expected > 0 and width != expected:
                raise InvalidInput(
                    f"Feature count mismatch: the model's signature has {expected} columns, "
                    f"row {i} has {width}"
                )

    def from_rows(self, rows: Any) -> Any:
        """Rows in signature order (lists or a 2-D array) as the input the pyfunc expects."""
        pd = _pandas()
        if isinstance(rows, np.ndarray) and rows.ndim != 2:
            return rows  # N-D tensors go to the model as sent
        self._check_width([len(r) for r in rows])
        if self._tensor is not None:
            try:
                return np.asarray(rows, dtype=self._tensor[0])
            except (ValueError, TypeError) as exc:
                raise DecodeError(f"Input does not fit the tensor signature: {exc}") from None
        if self._columns is None:
            return pd.DataFrame(rows)
        # MLflow's own parser casts to the signature's types (float64 → float32 included,
        # which its schema enforcement would otherwise refuse).
        data = rows.tolist() if isinstance(rows, np.ndarray) else rows
        return self._mlflow_parse({"dataframe_split": {"columns": self._columns, "data": data}})

    def adapt(self, media: str, data: Any) -> Any:
        # Script mode decodes to arrays; name their columns so the pyfunc's schema passes.
        if isinstance(data, np.ndarray) and self._model is not None:
            return self.from_rows(data.reshape(1, -1) if data.ndim == 1 else data)
        return data

    def predict(self, data: Any) -> Any:
        return self.predict_with_params(data, None)

    def predict_with_params(self, data: Any, params: dict[str, Any] | None) -> Any:
        """`pyfunc.predict`, with MLflow's schema errors as 400s naming the cause."""
        try:
            if params is None:
                return self._model.predict(data)
            return self._model.predict(data, params=params)
        except _mlflow_error() as exc:
            raise InvalidInput(f"Input does not match the model: {_short(exc)}") from None
        except (ValueError, TypeError) as exc:
            raise PredictionFailed(f"Prediction failed: {_short(exc)}") from None

    def unload(self) -> None:
        self._model = None
        super().unload()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return not text.strip()  # an empty field is a missing number, not a name
    return True
