"""GPU instance types (`ml.g4dn.*`, `ml.g5.*`, `ml.p3.*`, ...) and which GPUs an instance gets.

Pure functions, no I/O beyond what callers pass in. An instance of a GPU type is pinned to
its own GPU(s) through `CUDA_VISIBLE_DEVICES`, round-robin over the machine's GPUs; on a
machine without GPUs nothing is pinned and the runtimes run on the CPU. The ONNX and
PyTorch runtimes use CUDA when `CUDA_VISIBLE_DEVICES` names a GPU and their build has it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

ENV = "CUDA_VISIBLE_DEVICES"
INSTANCE_TYPE_ENV = "MH_INSTANCE_TYPE"

# GPUs per size for the families SageMaker hosts on; sizes not listed have one.
_GPUS: dict[str, dict[str, int]] = {
    "g4dn": {"12xlarge": 4, "metal": 8},
    "g5": {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8},
    "g6": {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8},
    "g6e": {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8},
    "p2": {"8xlarge": 8, "16xlarge": 16},
    "p3": {"8xlarge": 4, "16xlarge": 8},
    "p3dn": {"24xlarge": 8},
    "p4d": {"24xlarge": 8},
    "p5": {"48xlarge": 8},
}
_TYPE = re.compile(r"^ml\.([a-z]+\d+[a-z]*)\.(\w+)$")


def gpus_per_instance(instance_type: str | None) -> int:
    """GPUs an instance of `instance_type` has (0 for CPU types and unknown names)."""
    match = _TYPE.match((instance_type or "").strip().lower())
    if match is None or match.group(1) not in _GPUS:
        return 0
    family, size = match.groups()
    return _GPUS[family].get(size, 1)


def assign(instance_type: str | None, ordinal: int, machine: Sequence[str]) -> str | None:
    """The `CUDA_VISIBLE_DEVICES` value of the `ordinal`-th instance started on a machine
    with GPUs `machine`, or None (a CPU type, or no GPU here: run on the CPU)."""
    want = gpus_per_instance(instance_type)
    if want == 0 or not machine:
        return None
    want = min(want, len(machine))
    slots = len(machine) // want
    start = (ordinal % slots) * want
    return ",".join(machine[start : start + want])


def machine_gpus(env: Mapping[str, str], device_names: Iterable[str]) -> list[str]:
    """This machine's GPU ids: the parent's own `CUDA_VISIBLE_DEVICES` when set, else the
    NVIDIA device files (`nvidia0`, `nvidia1`, ... from a listing of /dev)."""
    given = env.get(ENV)
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip() and g.strip() != "-1"]
    found = sorted(int(n[6:]) for n in device_names if re.fullmatch(r"nvidia\d+", n))
    return [str(i) for i in found]


def use_cuda(env: Mapping[str, str]) -> bool:
    """Whether this instance was given a GPU (the runtimes still check CUDA is usable)."""
    value = env.get(ENV, "").strip()
    return bool(value) and value != "-1"


def onnx_providers(gpu: bool, available: Sequence[str]) -> list[str]:
    """onnxruntime execution providers: CUDA first when this instance has a GPU."""
    if gpu and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
