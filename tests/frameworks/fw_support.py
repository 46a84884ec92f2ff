"""Helpers shared by the framework tests (a plain module, not fixtures)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import numpy as np

N_FEATURES = 5


def make_data(n_rows: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic binary task: label depends on three of five features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, N_FEATURES)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] > 0).astype(np.int64)
    return X, y


def csv_body(X: np.ndarray) -> bytes:
    """Rows as CSV with round-trip float formatting."""
    return "\n".join(",".join(repr(float(v)) for v in row) for row in X).encode()


PKG = "mhtestpkg"


def write_wheel(directory: Path, version: str = "0.1", value: int = 42) -> Path:
    """A minimal pure-Python wheel `mhtestpkg` whose module holds `VALUE = value`."""
    dist = f"{PKG}-{version}.dist-info"
    files = {
        f"{PKG}/__init__.py": f"VALUE = {value}\n".encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {PKG}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: modelhost-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = [
        f"{path},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}"
        for path, data in files.items()
    ]
    files[f"{dist}/RECORD"] = ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()
    path = directory / f"{PKG}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
