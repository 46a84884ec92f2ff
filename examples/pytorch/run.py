"""Train a small PyTorch network on the churn data, export TorchScript, deploy it with boto3.

    python examples/pytorch/run.py [--endpoint-url http://127.0.0.1:8080] [--keep]

Without `--endpoint-url` a modelhost server is started in a temporary directory and stopped
at the end. The script trains a 69→32→1 MLP on modelhost's synthetic churn data (seeded, no
download), traces it with `torch.jit.trace`, writes a SageMaker-style `model.tar.gz` holding
`model.pt`, deploys it with the boto3 calls a SageMaker user already writes (only
`endpoint_url` differs), sends CSV and JSON requests, and compares every served probability
with the same module's in-process output. Exit status 0 when all match within 1e-6.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelhost.testing import churn
from modelhost.testing.server import ModelhostServer, boto3_clients

# Any image URI naming pytorch selects modelhost's PyTorch runtime; this is SageMaker's own.
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.3.0-cpu-py311"
ROLE = "arn:aws:iam::123456789012:role/modelhost"
# The server runs the same TorchScript graph on the same float32 inputs (csv_rows writes
# text that parses back to the exact float32 values), so only BLAS blocking under another
# thread count can differ: sigmoid outputs lie in [0, 1], where 1e-6 is ~16 float32 ulps.
TOLERANCE = 1e-6


class ChurnNet(torch.nn.Module):
    """Standardises the 69 features with stored statistics, then a small MLP → P(churn)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        # Buffers travel inside the TorchScript archive, so clients send raw features.
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(churn.N_FEATURES, 32),
            torch.nn.ReLU(),
            torch.nn.Linear(32, 1),
            torch.nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def train(data: churn.ChurnData, epochs: int = 60) -> ChurnNet:
    """A few full-batch Adam epochs: seconds on a laptop CPU, clearly better than chance."""
    torch.manual_seed(0)
    X = torch.from_numpy(data.X)
    y = torch.from_numpy(data.y).reshape(-1, 1)
    model = ChurnNet(X.mean(dim=0), X.std(dim=0).clamp_min(1e-3))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy(model(X), y).backward()
        opt.step()
    return model.eval()


def write_artifact(model: ChurnNet, example: np.ndarray, directory: Path) -> Path:
    """`model.tar.gz` holding a traced `model.pt`, as SageMaker's PyTorch container loads."""
    with warnings.catch_warnings():
        # torch >= 2.9 deprecates TorchScript for torch.export; SageMaker's PyTorch container
        # and modelhost's pytorch runtime load TorchScript, so that is what we ship.
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        traced = torch.jit.trace(model, torch.from_numpy(example))
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    payload = buffer.getvalue()
    path = directory / "model.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("model.pt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return path


def deploy(sm: Any, name: str, artifact: Path) -> None:
    """create_model → create_endpoint_config → create_endpoint → wait, as against SageMaker."""
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": artifact.as_uri()},
        ExecutionRoleArn=ROLE,
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )


def delete(sm: Any, name: str) -> None:
    sm.delete_endpoint(EndpointName=name)
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)


def check(runtime: Any, name: str, X: np.ndarray, expected: np.ndarray) -> bool:
    """Invoke with CSV and with JSON; True when every answer matches `expected`."""
    # The PyTorch container's default answer is JSON of the output tensor's tolist().
    csv_resp = runtime.invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Body=churn.csv_body(X)
    )
    from_csv = np.array(json.loads(csv_resp["Body"].read()))
    json_resp = runtime.invoke_endpoint(
        EndpointName=name,
        ContentType="application/json",
        Accept="text/csv",
        Body=json.dumps({"instances": X.tolist()}),
    )
    from_json = np.array([[float(v)] for v in json_resp["Body"].read().decode().split()])
    print(f"{'served (CSV)':>14} {'served (JSON)':>14} {'in-process':>14}")
    for a, b, e in zip(from_csv.ravel(), from_json.ravel(), expected.ravel(), strict=True):
        print(f"{a:>14.8f} {b:>14.8f} {e:>14.8f}")
    worst = max(np.abs(from_csv - expected).max(), np.abs(from_json - expected).max())
    print(f"largest difference: {worst:.2e} (tolerance {TOLERANCE:g})")
    return bool(worst <= TOLERANCE) and from_csv.shape == expected.shape


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint-url", help="a running modelhost (default: start one)")
    parser.add_argument("--name", default="churn-pytorch-example", help="model/endpoint name")
    parser.add_argument("--rows", type=int, default=8, help="test rows to send")
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()

    train_data, test_data = churn.make_churn(4000, seed=0).split(test_fraction=0.2, seed=0)
    model = train(train_data)
    # Half customers who churned, half who stayed.
    half = args.rows // 2
    y = test_data.y
    X = test_data.X[
        np.r_[np.flatnonzero(y == 1)[:half], np.flatnonzero(y == 0)[: args.rows - half]]
    ]
    with torch.inference_mode():
        expected = model(torch.from_numpy(X)).numpy()
        accuracy = (model(torch.from_numpy(test_data.X)) >= 0.5).numpy().ravel() == test_data.y
    print(f"trained: test accuracy {accuracy.mean():.3f} (churn rate {test_data.y.mean():.3f})")

    with tempfile.TemporaryDirectory() as tmp:
        artifact = write_artifact(model, X[:2], Path(tmp))
        server = None
        url = args.endpoint_url
        if url is None:
            server = ModelhostServer(Path(tmp) / "home").start()
            url = server.url
            print(f"started modelhost at {url}")
        try:
            sm, runtime = boto3_clients(url)
            deploy(sm, args.name, artifact)
            try:
                ok = check(runtime, args.name, X, expected)
            finally:
                if not args.keep:
                    delete(sm, args.name)
        finally:
            if server is not None:
                server.stop()
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
