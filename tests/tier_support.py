"""Helpers of the compiled tier's tests: invoke a multi-model endpoint's state model
through boto3, read the endpoint log's "now predicts with its compiled form", and make
entries of its bounded cache without a compiler."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.frameworks.compiled_predictor import FAILED
from modelhost.store import cache_bound
from modelhost.testing.churn import csv_body

ATTACHED = "now predicts with its compiled form"


def predict(rt: Any, name: str, target: str, rows: np.ndarray) -> np.ndarray:
    """`target`'s answers (a state model: `CA` for `CA.tar.gz`) as float32 scores."""
    answer = rt.invoke_endpoint(
        EndpointName=name,
        ContentType="text/csv",
        Body=csv_body(rows),
        TargetModel=f"{target}.tar.gz",
    )
    text = answer["Body"].read().decode()
    return np.array([float(v) for v in re.split("[,\n]", text) if v], dtype=np.float32)


def attached_lines(logs: Any, endpoint: str) -> list[str]:
    """The endpoint log's lines saying a model switched to its compiled form."""
    return log_lines(logs, endpoint, ATTACHED)


def log_lines(logs: Any, endpoint: str, phrase: str) -> list[str]:
    """The endpoint log's lines holding `phrase` (none while the log group is not there)."""
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    try:
        found = logs.filter_log_events(logGroupName=group, filterPattern=f'"{phrase}"')
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [e["message"] for e in found["events"]]


def compiled_entry(
    root: Path, name: str, size: int, used_s: float | None = None, failed: bool = False
) -> Path:
    """A complete entry of the compiled tier's cache at `root` (its key a digest of `name`):
    a `size`-byte library, or a failure record, and its marker, last used at `used_s`."""
    key = hashlib.sha256(name.encode()).hexdigest()
    folder = root / key
    folder.mkdir(parents=True)
    if failed:
        (folder / FAILED).write_text(json.dumps({"reason": "x" * size}))
    else:
        (folder / "model.so").write_bytes(b"\0" * size)
    marker = cache_bound.marker(root, key)
    marker.touch()
    if used_s is not None:
        os.utime(marker, (used_s, used_s))
    return folder
