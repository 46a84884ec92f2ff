"""PyTorch runtime, like SageMaker's PyTorch inference container with its default handlers.

Load: a TorchScript archive (`model.pt`, `model.pth`, or another *.pt/*.pth/*.torchscript
file) with `torch.jit.load(path, map_location="cpu")`, put in eval mode. An eager module or
state dict saved with `torch.save` is refused with a message saying how to export it (or to
ship `code/inference.py` with `model_fn`), as SageMaker's container refuses it without a
`model_fn`. Predict: the decoded array becomes a tensor of the module's float dtype under
`torch.inference_mode()`; the output tensor becomes a numpy array.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

from modelhost.codecs import npy as npy_codec
from modelhost.codecs import registry
from modelhost.errors import (
    DecodeError,
    EncodeError,
    InvalidInput,
    ModelLoadError,
    PredictionFailed,
)
from modelhost.frameworks.base import Runtime, describe_files, model_files

PREFERRED = ("model.pt", "model.pth")
SUFFIXES = (".pt", ".pth", ".torchscript")
_ZIP_MAGIC = b"PK\x03\x04"
# torch.save's pre-1.6 format: a pickle whose first object is torch's magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
_NPY_MAGIC = b"\x93NUMPY"
_MATMUL_SHAPES = re.compile(r"shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")

TORCHSCRIPT = "torchscript"
EAGER = "eager"  # torch.save of a module or state dict (zip or legacy pickle)

_EXPORT_HINT = (
    "export it with torch.jit.script(model).save('model.pt') or "
    "torch.jit.trace(model, example).save('model.pt'), or add code/inference.py with "
    "model_fn(model_dir) that builds the module and loads its weights"
)


def archive_kind(path: Path) -> str | None:
    """`"torchscript"`, `"eager"` (a `torch.save` file) or None, from the file's header and
    zip directory only (no unpickling, no torch import)."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_LEGACY_MAGIC))
        if head.startswith(_LEGACY_MAGIC):
            return EAGER
        if not head.startswith(_ZIP_MAGIC):
            return None
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    # Both formats hold `<archive>/data.pkl`; only TorchScript adds `constants.pkl` and
    # the serialized `code/` of the module.
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return TORCHSCRIPT
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return EAGER
    return None


def _torch() -> Any:
    import torch  # deferred: a ~1 s import that must not delay the socket bind

    return torch


def _short_error(exc: BaseException) -> str:
    # TorchScript errors carry both tracebacks; the cause is the last line.
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return last.removeprefix("RuntimeError: ")


def _device(gpu: bool) -> str:
    """`cuda` when this instance was given a GPU (CUDA_VISIBLE_DEVICES) and torch has CUDA."""
    return "cuda" if gpu and _torch().cuda.is_available() else "cpu"


def to_numpy(output: Any) -> Any:
    """Model output → numpy: a tensor as an array, a tuple/list by its first element, a dict
    as a dict of arrays (answered only as JSON)."""
    torch = _torch()
    if isinstance(output, tuple | list):
        if not output:
            raise PredictionFailed("The model returned an empty tuple/list")
        return to_numpy(output[0])
    if isinstance(output, dict):
        return {str(k): to_numpy(v) for k, v in output.items()}
    if isinstance(output, torch.Tensor):
        tensor = output.detach().cpu()
        if tensor.dtype in (torch.bfloat16, torch.float16):
            tensor = tensor.float()  # numpy has no bfloat16; float16 JSON would lose digits
        return tensor.numpy()
    return output


def _named_outputs_only_json(encoder: registry.Encoder) -> registry.Encoder:
    def encode(prediction: Any) -> bytes:
        if isinstance(prediction, dict):
            raise EncodeError(
                f"The model returns named outputs ({', '.join(prediction)}): ask for "
                "Accept: application/json, or add code/inference.py with output_fn"
            )
        return encoder(prediction)

    return encode


def _encode_json(prediction: Any) -> bytes:
    if isinstance(prediction, dict):
        prediction = {k: np.asarray(v).tolist() for k, v in prediction.items()}
    return registry.ENCODERS[registry.JSON](prediction)


class PyTorchRuntime(Runtime):
    """Serves a TorchScript module on CPU, with the PyTorch inference toolkit's defaults.

    `MH_INSTANCE_RUNTIME=pytorch` (images naming pytorch/torch), or chosen by auto-detection
    for a *.pt/*.pth/*.torchscript file that is a TorchScript or `torch.save` zip archive
    (the latter so an eager model gets a clear load error, or works under a script's
    `model_fn`, as SageMaker's `model.pth` + `inference.py` pattern does).

    In: CSV, JSON and JSON Lines become a float tensor of the module's dtype (float32 for
    a default module); NPY keeps its shape (so image batches of N×C×H×W work) and integer
    dtypes (token ids for embedding layers), and floats are cast to the module's dtype.
    Out (default `application/json`, as the toolkit's `default_output_fn`): the output
    tensor's `tolist()` as JSON (a bare list: `[[0.12], [0.93]]` for an N×1 output), CSV
    one row per line, JSON Lines, NPY. A tuple or list of outputs answers with its first
    element. A dict of named outputs answers only as JSON, `{"name": [...], ...}`; for
    anything else add `output_fn`. Threads: `torch.set_num_threads(OMP_NUM_THREADS)`.
    """

    name: ClassVar[str] = "pytorch"
    encoders: ClassVar[Mapping[str, registry.Encoder]] = {
        registry.JSON: _encode_json,
        registry.CSV: _named_outputs_only_json(registry.ENCODERS[registry.CSV]),
        registry.JSONLINES: _named_outputs_only_json(registry.ENCODERS[registry.JSONLINES]),
        registry.NPY: _named_outputs_only_json(registry.ENCODERS[registry.NPY]),
    }
    input_dtype: ClassVar[DTypeLike] = np.float32
    inline_max_bytes = 0  # a module's cost is unknown (a CNN is not an MLP): never inline

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._module: Any = None
        self._threads_set = False
        self._device = "cpu"

    @classmethod
    def detect(cls, model_dir: Path) -> bool:
        try:
            files = model_files(model_dir)
        except ModelLoadError:
            return False
        return any(p.suffix.lower() in SUFFIXES and archive_kind(p) is not None for p in files)

    @property
    def model(self) -> Any:
        return self._module

    def load(self, model_dir: Path) -> None:
        self._device = _device(self.options.gpu)
        path = self._find_model_file(model_dir)
        kind = archive_kind(path)
        if kind == EAGER:
            raise ModelLoadError(
                f"{path.name} was saved with torch.save (an eager nn.Module or a state dict), "
                f"not as TorchScript, and the pytorch runtime cannot run it: {_EXPORT_HINT}"
            )
        if kind is None:
            raise ModelLoadError(
                f"{path.name} is not a TorchScript archive (not a torch zip file; is it "
                f"truncated or another format?): {_EXPORT_HINT}"
            )
        torch = _torch()
        self._set_threads()
        try:
            with warnings.catch_warnings():
                # torch 2.9+ deprecates TorchScript in favour of torch.export, but TorchScript
                # is what SageMaker's PyTorch container and TorchServe load; the warning
                # tells a model server's operator nothing they can act on.
                warnings.filterwarnings(
                    "ignore",
                    message=r"`torch\.jit\.load` is deprecated",
                    category=DeprecationWarning,
                )
                module = torch.jit.load(str(path), map_location=self._device)
        except Exception as exc:
            raise ModelLoadError(
                f"{path.name} could not be loaded with torch.jit.load (torch "
                f"{torch.__version__}): {_short_error(exc)}"
            ) from None
        module.eval()
        self._module = module
        self.model_dir = model_dir

    def _find_model_file(self, model_dir: Path) -> Path:
        files = [p for p in model_files(model_dir) if p.suffix.lower() in SUFFIXES]
        by_name = {p.name: p for p in files}
        for name in PREFERRED:
            if name in by_name:
                return by_name[name]
        scripted = [p for p in files if archive_kind(p) == TORCHSCRIPT]
        if scripted or files:
            return (scripted or files)[0]
        raise ModelLoadError(
            f"No model file found in {model_dir}: expected a TorchScript 'model.pt' (or a "
            f"*.pth/*.torchscript file) for the pytorch runtime; files present: "
            f"{describe_files(model_dir)}"
        )

    def _set_threads(self) -> None:
        if self._threads_set:
            return
        torch = _torch()
        # Parent sets OMP_NUM_THREADS to this instance's CPU share; torch's default pools
        # use every core and would fight the other instances on the machine.
        torch.set_num_threads(max(1, self.options.nthread))
        # Settable only before the first parallel op; a later load keeps the existing pool.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
        self._threads_set = True

    def guess_content_type(self, body: bytes) -> str:
        if body.startswith(_NPY_MAGIC):
            return registry.NPY
        return super().guess_content_type(body)

    def decode(self, body: bytes, content_type: str | None) -> tuple[str, NDArray[Any]]:
        media = registry.canonical(content_type or self.guess_content_type(body))
        if media != registry.NPY or not body:
            return super().decode(body, content_type)
        # Any rank (the codec's decode allows only 1-D/2-D): tensors are often N-D.
        array = npy_codec.load(body)
        if array.dtype.kind not in "fiub":
            raise DecodeError(f"Malformed NPY body: dtype {array.dtype} is not numeric")
        return media, array.reshape(1, -1) if array.ndim == 1 else array

    def predict(self, data: Any) -> Any:
        return self.predict_with(self._module, data)

    def predict_with(self, model: Any, data: Any) -> Any:
        """Run `model` (this runtime's module, or an eager one from a script's `model_fn`) on
        decoded data, as the toolkit's `default_predict_fn` does; returns numpy."""
        torch = _torch()
        self._set_threads()
        if isinstance(model, torch.nn.Module) and model.training:
            model.eval()  # the toolkit calls eval() too: dropout/batch-norm in inference form
        # Arrays become tensors; a tensor, or what a script's input_fn built (a dict or
        # tuple of tensors for a multi-input model), goes to the model as it is.
        is_array = isinstance(data, np.ndarray | list)
        tensor = self._to_tensor(model, data) if is_array else data
        if is_array and self._device != "cpu":
            tensor = tensor.to(self._device)
        try:
            with torch.inference_mode():
                output = model(tensor)
        except (RuntimeError, torch.jit.Error, ValueError, TypeError) as exc:
            raise self._input_error(tensor, exc) from None
        return to_numpy(output)

    def _to_tensor(self, model: Any, data: Any) -> Any:
        torch = _torch()
        array = np.asarray(data)
        target = None
        if array.dtype.kind == "f":
            target = _float_dtype(model)
            array = array.astype(np.float64 if target == torch.float64 else np.float32, copy=False)
        elif array.dtype.kind not in "iub":
            raise InvalidInput(f"Input has dtype {array.dtype}: the model takes numbers only")
        if not array.flags.writeable or not array.flags.c_contiguous:
            # torch.from_numpy warns on read-only arrays and needs a strided layout.
            array = np.ascontiguousarray(array).copy()
        tensor = torch.from_numpy(array)
        # float16/bfloat16 modules: numpy has no bfloat16, so convert on the torch side.
        return tensor if target is None or tensor.dtype == target else tensor.to(target)

    @staticmethod
    def _input_error(tensor: Any, exc: BaseException) -> PredictionFailed:
        message = _short_error(exc)
        match = _MATMUL_SHAPES.search(message)
        if match and getattr(tensor, "ndim", 0) == 2 and int(match[2]) == tensor.shape[1]:
            expected = int(match[3])
            return PredictionFailed(
                f"Feature count mismatch: the model expects {expected} features, "
                f"row 1 has {tensor.shape[1]}"
            )
        return PredictionFailed(f"Prediction failed: {message}")

    def unload(self) -> None:
        self._module = None
        super().unload()


def _float_dtype(model: Any) -> Any:
    """torch dtype of the module's first floating parameter/buffer (float32 if none)."""
    torch = _torch()
    if isinstance(model, torch.nn.Module):
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return torch.float32
