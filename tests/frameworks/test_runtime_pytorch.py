"""The PyTorch runtime: TorchScript loading, every content type, errors, script mode."""

from __future__ import annotations

import inspect
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.errors import EncodeError, InvalidInput, ModelLoadError, PredictionFailed
from modelhost.frameworks.base import Context, RuntimeOptions
from modelhost.frameworks.pytorch import PyTorchRuntime, archive_kind
from modelhost.frameworks.registry import select_runtime
from modelhost.frameworks.script import ScriptRuntime
from tests.frameworks.fw_support import N_FEATURES, csv_body

# Imported at collection, not inside a test: tests/frameworks/conftest.py drops modules a
# test imports, and torch cannot be imported twice in one process.
torch = pytest.importorskip("torch")

# torch.jit.load/trace/script warn that TorchScript is deprecated (torch >= 2.9); the runtime
# silences its own load, and these tests build archives the way users still do.
_TS_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"
ATOL = 1e-6  # same float32 kernels both sides; a tolerance only for BLAS blocking order


class MLP(torch.nn.Module):
    def __init__(self, n_in: int = N_FEATURES) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_in, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1), torch.nn.Sigmoid()
        )

    def forward(self, x: Any) -> Any:
        return self.net(x)


@pytest.fixture(scope="module")
def mlp(data: tuple[np.ndarray, np.ndarray]) -> Any:
    X, y = data
    torch.manual_seed(0)
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


def _expected(model: Any, X: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return np.asarray(model(torch.from_numpy(np.asarray(X, dtype=np.float32))).numpy())


def _save_jit(module: Any, path: Path, example: Any = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TS_DEPRECATED, category=DeprecationWarning)
        if example is None:
            torch.jit.script(module).save(str(path))
        else:
            torch.jit.trace(module, example).save(str(path))
    return path


@pytest.fixture()
def ts_dir(tmp_path: Path, mlp: Any, data: Any) -> Path:
    _save_jit(mlp, tmp_path / "model" / "model.pt", torch.from_numpy(data[0][:2]))
    return tmp_path / "model"


@pytest.fixture()
def loaded(ts_dir: Path) -> Iterator[PyTorchRuntime]:
    runtime = PyTorchRuntime(RuntimeOptions(nthread=1))
    runtime.load(ts_dir)
    yield runtime
    runtime.unload()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_detect_and_auto_selection(tmp_path: Path, ts_dir: Path, mlp: Any) -> None:
    assert PyTorchRuntime.detect(ts_dir)
    assert archive_kind(ts_dir / "model.pt") == "torchscript"
    assert isinstance(select_runtime("auto", ts_dir), PyTorchRuntime)
    eager = tmp_path / "eager"
    eager.mkdir()
    torch.save(mlp.state_dict(), eager / "model.pth")
    assert archive_kind(eager / "model.pth") == "eager"
    assert PyTorchRuntime.detect(eager)  # so the load error (or a script's model_fn) applies
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.pt").write_bytes(b"not a torch file")
    (other / "weights.bin").write_bytes(b"PK\x03\x04")
    assert not PyTorchRuntime.detect(other)
    assert not PyTorchRuntime.detect(tmp_path / "missing")


def test_json_default_is_the_toolkits_tolist(
    loaded: PyTorchRuntime, mlp: Any, data: Any, ts_dir: Path
) -> None:
    X = data[0][:4]
    body, media = loaded.handle(
        json.dumps(X.tolist()).encode(), "application/json", None, Context(str(ts_dir))
    )
    assert media == "application/json"
    got = json.loads(body)
    assert np.asarray(got).shape == (4, 1)  # a bare list, as the toolkit's default_output_fn
    np.testing.assert_allclose(got, _expected(mlp, X), atol=ATOL, rtol=0)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize(
    "content_type", ["text/csv", "application/json", "application/jsonlines", "application/x-npy"]
)
@pytest.mark.parametrize(
    "accept", ["application/json", "text/csv", "application/jsonlines", "application/x-npy"]
)
def test_every_content_type(
    loaded: PyTorchRuntime, mlp: Any, data: Any, content_type: str, accept: str
) -> None:
    X = data[0][:3]
    bodies = {
        "text/csv": csv_body(X),
        "application/json": json.dumps({"instances": X.tolist()}).encode(),
        "application/jsonlines": "\n".join(json.dumps(r) for r in X.tolist()).encode(),
        "application/x-npy": _npy(X),
    }
    body, media = loaded.handle(bodies[content_type], content_type, accept, Context("."))
    assert media == accept
    if accept == "application/x-npy":
        got = np.load(io.BytesIO(body))
    elif accept == "text/csv":
        got = np.array([[float(v)] for v in body.decode().split("\n")])
    elif accept == "application/jsonlines":
        got = np.array([json.loads(line) for line in body.decode().split("\n")])
    else:
        got = np.array(json.loads(body))
    np.testing.assert_allclose(got, _expected(mlp, X), atol=ATOL, rtol=0)


def test_guessed_content_types(loaded: PyTorchRuntime, mlp: Any, data: Any) -> None:
    X = data[0][:2]
    expected = _expected(mlp, X)
    for body in (csv_body(X), json.dumps(X.tolist()).encode(), _npy(X.astype(np.float64))):
        got, _ = loaded.handle(body, None, None, Context("."))
        np.testing.assert_allclose(json.loads(got), expected, atol=ATOL, rtol=0)


def test_wrong_feature_count_is_400(loaded: PyTorchRuntime) -> None:
    with pytest.raises(PredictionFailed) as info:
        loaded.handle(b"1,2,3", "text/csv", None, Context("."))
    assert info.value.status_code == 400
    assert info.value.message == (
        f"Feature count mismatch: the model expects {N_FEATURES} features, row 1 has 3"
    )
    with pytest.raises(InvalidInput):
        loaded.predict(np.array([["a", "b"]]))


class TupleOut(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2.0, x


class DictOut(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"double": x * 2.0, "sum": x.sum(dim=1)}


class EmbOut(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(10, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emb(x)  # integer ids in, N-D out


def test_tuple_dict_and_integer_nd_io(tmp_path: Path) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    runtimes = {}
    for kind, module in (("tuple", TupleOut()), ("dict", DictOut()), ("emb", EmbOut())):
        _save_jit(module, tmp_path / kind / "model.pt")
        runtimes[kind] = PyTorchRuntime()
        runtimes[kind].load(tmp_path / kind)
    body, _ = runtimes["tuple"].handle(csv_body(x), "text/csv", None, Context("."))
    assert json.loads(body) == (x * 2).tolist()  # first output
    body, _ = runtimes["dict"].handle(csv_body(x), "text/csv", "application/json", Context("."))
    assert json.loads(body) == {"double": (x * 2).tolist(), "sum": x.sum(axis=1).tolist()}
    with pytest.raises(EncodeError) as info:
        runtimes["dict"].handle(csv_body(x), "text/csv", "text/csv", Context("."))
    assert info.value.status_code == 406 and "double, sum" in info.value.message
    ids = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    body, _ = runtimes["emb"].handle(
        _npy(ids), "application/x-npy", "application/x-npy", Context(".")
    )
    out = np.load(io.BytesIO(body))
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out, runtimes["emb"].model.emb.weight.detach().numpy()[ids])


def test_eager_module_and_state_dict_are_refused_with_the_fix(tmp_path: Path, mlp: Any) -> None:
    for what in (mlp, mlp.state_dict()):
        model_dir = tmp_path / type(what).__name__
        model_dir.mkdir()
        torch.save(what, model_dir / "model.pth")
        with pytest.raises(ModelLoadError) as info:
            PyTorchRuntime().load(model_dir)
        message = info.value.message
        assert "model.pth was saved with torch.save" in message
        assert "torch.jit.script" in message and "torch.jit.trace" in message
        assert "model_fn" in message


def test_broken_artifacts(tmp_path: Path, ts_dir: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        PyTorchRuntime().load(tmp_path)
    assert "expected a TorchScript 'model.pt'" in info.value.message
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    data = (ts_dir / "model.pt").read_bytes()
    (truncated / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as info:
        PyTorchRuntime().load(truncated)
    assert "model.pt is not a TorchScript archive" in info.value.message
    assert "truncated" in info.value.message


def test_torch_is_imported_only_by_load() -> None:
    # Auto-detection and selection must not pay for (or require) the torch import.
    source = inspect.getsource(archive_kind) + inspect.getsource(PyTorchRuntime.detect)
    assert "_torch()" not in source and "import torch" not in source


STATE_DICT_SCRIPT = """
import torch


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1), torch.nn.Sigmoid()
        )

    def forward(self, x):
        return self.net(x)


def model_fn(model_dir):
    model = MLP()
    model.load_state_dict(torch.load(f"{model_dir}/model.pth", weights_only=True))
    return model
"""


def _script_dir(tmp_path: Path, mlp: Any, script: str) -> Path:
    model_dir = tmp_path / "script-model"
    (model_dir / "code").mkdir(parents=True)
    torch.save(mlp.state_dict(), model_dir / "model.pth")
    (model_dir / "code" / "inference.py").write_text(script)
    return model_dir


def test_script_mode_model_fn_only_with_an_eager_module(
    tmp_path: Path, mlp: Any, data: Any
) -> None:
    model_dir = _script_dir(tmp_path, mlp, STATE_DICT_SCRIPT)
    runtime = select_runtime("auto", model_dir)
    assert isinstance(runtime, ScriptRuntime) and isinstance(runtime.base, PyTorchRuntime)
    runtime.load(model_dir)
    X = data[0][:3]
    ctx = Context(str(model_dir))
    for body, content_type in ((csv_body(X), "text/csv"), (_npy(X), "application/x-npy")):
        out, media = runtime.handle(body, content_type, None, ctx)
        assert media == "application/json"
        np.testing.assert_allclose(json.loads(out), _expected(mlp, X), atol=ATOL, rtol=0)


def test_script_mode_with_predict_fn(tmp_path: Path, mlp: Any, data: Any) -> None:
    script = STATE_DICT_SCRIPT + (
        "\n\ndef predict_fn(data, model):\n"
        "    with torch.no_grad():\n"
        "        return model(torch.as_tensor(data, dtype=torch.float32)).numpy()\n"
    )
    model_dir = _script_dir(tmp_path, mlp, script)
    runtime = select_runtime("pytorch", model_dir)
    runtime.load(model_dir)
    X = data[0][:2]
    out, _ = runtime.handle(csv_body(X), "text/csv", "text/csv", Context(str(model_dir)))
    got = [float(v) for v in out.decode().split("\n")]
    np.testing.assert_allclose(got, _expected(mlp, X).ravel(), atol=ATOL, rtol=0)


def test_predict_with_puts_an_eager_module_in_eval_mode(mlp: Any, data: Any) -> None:
    eager = MLP()
    eager.load_state_dict(mlp.state_dict())
    eager.train()
    got = PyTorchRuntime().predict_with(eager, data[0][:2].astype(np.float64))
    assert not eager.training
    np.testing.assert_allclose(got, _expected(mlp, data[0][:2]), atol=ATOL, rtol=0)


def test_predict_with_passes_script_built_inputs_through() -> None:
    # An input_fn may build a dict (or tuple) of tensors for a multi-input model.
    out = PyTorchRuntime().predict_with(lambda d: d["a"] * 2, {"a": torch.ones(2)})
    assert out.tolist() == [2.0, 2.0]
