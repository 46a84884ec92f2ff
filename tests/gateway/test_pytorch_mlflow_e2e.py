"""PyTorch and MLflow models through boto3 and the gateway: by image, auto-detected, broken,
and a PyTorch script-mode model whose inference.py defines only model_fn."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import tarfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError, WaiterError

from modelhost.frameworks.mlflow import import_mlflow
from modelhost.testing.churn import FEATURE_NAMES, ChurnData, csv_rows
from tests.support import deploy, unique

pytestmark = pytest.mark.integration

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")

PYTORCH_URI = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/"
    "pytorch-inference:2.3.0-cpu-py311-ubuntu20.04-sagemaker"
)
# Served rows are compared with in-process predictions of the same float32 module; 1e-6
# leaves room only for BLAS blocking differences between the two processes' thread counts.
ATOL = 1e-6
N_ROWS = 6

SCRIPT = """
import torch


class ChurnNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(69))
        self.register_buffer("std", torch.ones(69))
        self.net = torch.nn.Sequential(
            torch.nn.Linear(69, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1), torch.nn.Sigmoid()
        )

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def model_fn(model_dir):
    model = ChurnNet()
    model.load_state_dict(torch.load(f"{model_dir}/model.pth", weights_only=True))
    return model
"""


class ChurnNet(torch.nn.Module):
    """The same network as SCRIPT's (kept in step by the script-mode test's comparison)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(69))
        self.register_buffer("std", torch.ones(69))
        self.net = torch.nn.Sequential(
            torch.nn.Linear(69, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1), torch.nn.Sigmoid()
        )

    def forward(self, x: Any) -> Any:
        return self.net((x - self.mean) / self.std)


def _tar(files: dict[str, bytes], out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def _tar_dir(directory: Path, out: Path, prefix: str = "") -> Path:
    files = {
        prefix + str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
    return _tar(files, out)


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def net(churn_data: ChurnData) -> Any:
    torch.manual_seed(0)
    X = torch.from_numpy(churn_data.X[:1000])
    y = torch.from_numpy(churn_data.y[:1000]).reshape(-1, 1)
    model = ChurnNet()
    model.mean.copy_(X.mean(dim=0))
    model.std.copy_(X.std(dim=0).clamp_min(1e-3))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy(model(X), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def clf(churn_data: ChurnData) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    frame = pd.DataFrame(churn_data.X[:1000], columns=list(FEATURE_NAMES))
    return DecisionTreeClassifier(max_depth=5, random_state=0).fit(frame, churn_data.y[:1000])


def _save_mlflow(clf: Any, X: np.ndarray, path: Path) -> Path:
    import_mlflow()
    from mlflow.models import infer_signature

    frame = pd.DataFrame(X, columns=list(FEATURE_NAMES))
    importlib.import_module("mlflow.sklearn").save_model(
        clf,
        str(path),
        signature=infer_signature(frame, clf.predict_proba(frame)),
        serialization_format="cloudpickle",  # skops, MLflow's default, is not installed
        pip_requirements=["scikit-learn"],
        pyfunc_predict_fn="predict_proba",
    )
    return path


@pytest.fixture(scope="module")
def artifacts(
    net: Any, clf: Any, churn_data: ChurnData, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("torch-mlflow")
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export (torch >= 2.9), yet it is what
        # SageMaker's PyTorch container loads; users still export this way.
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        traced = torch.jit.trace(net, torch.from_numpy(churn_data.X[:2]))
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)  # ScriptModule.save(file object) writes nothing
    mlflow_dir = _save_mlflow(clf, churn_data.X[:1000], root / "mlflow-model")
    broken_mlflow = root / "broken-mlflow"  # MLmodel without the model.pkl it names
    broken_mlflow.mkdir()
    (broken_mlflow / "MLmodel").write_text((mlflow_dir / "MLmodel").read_text())
    return {
        "torchscript": _tar({"model.pt": buffer.getvalue()}, root / "ts.tar.gz"),
        "script": _tar(
            {"model.pth": _torch_bytes(net.state_dict()), "code/inference.py": SCRIPT.encode()},
            root / "script.tar.gz",
        ),
        "eager": _tar({"model.pth": _torch_bytes(net)}, root / "eager.tar.gz"),
        # The tarball wraps the folder, as `tar czf model.tar.gz model/` does.
        "mlflow": _tar_dir(mlflow_dir, root / "mlflow.tar.gz", prefix="model/"),
        "broken-mlflow": _tar_dir(broken_mlflow, root / "broken-mlflow.tar.gz"),
    }


@pytest.fixture()
def cleanup(sm: Any) -> Iterator[Callable[[str], str]]:
    """Delete what a test deployed (each instance holds torch or mlflow: ~200 MB)."""
    names: list[str] = []

    def track(name: str) -> str:
        names.append(name)
        return name

    yield track
    for name in names:
        for call, key in (
            (sm.delete_endpoint, "EndpointName"),
            (sm.delete_endpoint_config, "EndpointConfigName"),
            (sm.delete_model, "ModelName"),
        ):
            with contextlib.suppress(ClientError):
                call(**{key: name})


def _npy(X: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, X)
    return buffer.getvalue()


def _invoke(rt: Any, name: str, content_type: str, body: bytes | str, accept: str) -> bytes:
    resp = rt.invoke_endpoint(EndpointName=name, ContentType=content_type, Accept=accept, Body=body)
    assert resp["ContentType"] == accept
    return bytes(resp["Body"].read())


def _read(accept: str, body: bytes) -> np.ndarray:
    if accept == "application/x-npy":
        return np.load(io.BytesIO(body))
    if accept == "text/csv":
        return np.array([[float(v) for v in line.split(",")] for line in body.decode().split("\n")])
    if accept == "application/jsonlines":
        return np.array([json.loads(line) for line in body.decode().split("\n")])
    doc = json.loads(body)
    return np.array(doc["predictions"] if isinstance(doc, dict) else doc)


def _every_content_type(rt: Any, name: str, X: np.ndarray, json_body: str) -> dict[str, Any]:
    """One request per content type, each asking for a different Accept."""
    return {
        "csv": _read(
            "application/json",
            _invoke(rt, name, "text/csv", "\n".join(csv_rows(X)), "application/json"),
        ),
        "json": _read("text/csv", _invoke(rt, name, "application/json", json_body, "text/csv")),
        "jsonlines": _read(
            "application/jsonlines",
            _invoke(
                rt,
                name,
                "application/jsonlines",
                "\n".join(json.dumps(r) for r in X.tolist()),
                "application/jsonlines",
            ),
        ),
        "npy": _read(
            "application/x-npy",
            _invoke(rt, name, "application/x-npy", _npy(X), "application/x-npy"),
        ),
    }


@pytest.mark.parametrize("image", ["pytorch", None], ids=["image", "auto"])
def test_torchscript_model(
    sm: Any,
    rt: Any,
    net: Any,
    churn_data: ChurnData,
    artifacts: dict[str, Path],
    cleanup: Callable[[str], str],
    image: str | None,
) -> None:
    name = cleanup(unique("torch"))
    deploy(sm, name, str(artifacts["torchscript"]), image=image)
    X = churn_data.X[-N_ROWS:]
    with torch.inference_mode():
        expected = net(torch.from_numpy(X)).numpy()
    answers = _every_content_type(rt, name, X, json.dumps({"instances": X.tolist()}))
    for kind, got in answers.items():
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0, err_msg=kind)


def test_pytorch_script_mode_with_model_fn_only(
    sm: Any,
    rt: Any,
    net: Any,
    churn_data: ChurnData,
    artifacts: dict[str, Path],
    cleanup: Callable[[str], str],
) -> None:
    name = cleanup(unique("torch-script"))
    deploy(sm, name, str(artifacts["script"]), image=PYTORCH_URI)
    X = churn_data.X[-N_ROWS:]
    with torch.inference_mode():
        expected = net(torch.from_numpy(X)).numpy()
    resp = rt.invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Body="\n".join(csv_rows(X))
    )
    assert resp["ContentType"] == "application/json"
    np.testing.assert_allclose(json.loads(resp["Body"].read()), expected, atol=ATOL, rtol=0)
    got = _read(
        "application/x-npy", _invoke(rt, name, "application/x-npy", _npy(X), "application/x-npy")
    )
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("image", ["mlflow", None], ids=["image", "auto"])
def test_mlflow_model(
    sm: Any,
    rt: Any,
    churn_data: ChurnData,
    artifacts: dict[str, Path],
    cleanup: Callable[[str], str],
    clf: Any,
    image: str | None,
) -> None:
    name = cleanup(unique("mlflow"))
    deploy(sm, name, str(artifacts["mlflow"]), image=image)
    X = churn_data.X[-N_ROWS:]
    expected = clf.predict_proba(pd.DataFrame(X, columns=list(FEATURE_NAMES)))
    split = {"dataframe_split": {"columns": list(FEATURE_NAMES), "data": X.tolist()}}
    answers = _every_content_type(rt, name, X, json.dumps(split))
    for kind, got in answers.items():
        # Same float32 inputs and the same tree in both processes: exact.
        np.testing.assert_array_equal(got, expected, err_msg=kind)


def _wait_failed(sm: Any, name: str) -> str:
    with pytest.raises(WaiterError, match=r"Failed|failure"):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
        )
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "Failed"
    return str(desc["FailureReason"])


@pytest.mark.parametrize(
    ("artifact", "image", "fragments"),
    [
        ("eager", "pytorch", ("saved with torch.save", "torch.jit.script", "model_fn")),
        ("eager", None, ("saved with torch.save", "torch.jit.trace")),
        ("broken-mlflow", "mlflow", ("The MLflow model", "model.pkl")),
    ],
    ids=["eager-torch", "eager-torch-auto", "mlflow-missing-pickle"],
)
def test_broken_artifact_fails_endpoint_with_reason(
    sm: Any,
    artifacts: dict[str, Path],
    cleanup: Callable[[str], str],
    artifact: str,
    image: str | None,
    fragments: tuple[str, ...],
) -> None:
    name = cleanup(unique("broken"))
    deploy(sm, name, str(artifacts[artifact]), image=image, wait=False)
    reason = _wait_failed(sm, name)
    for fragment in fragments:
        assert fragment in reason, reason
