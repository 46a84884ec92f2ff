"""SageMaker instance types: vCPUs, memory, GPUs and accelerator (`ml.c5.xlarge` → 4 vCPUs, 8 GiB).

The figures live in one data table beside this module, `instance_types.csv` (package
data: `instance_type,vcpus,memory_gib,gpus,accelerator`, AWS's published sizes), read
once. Used for what SageMaker derives from the instance: how many models a multi-model
instance keeps loaded (memory), the CPU share and default worker count of a local
instance (vCPUs, capped by this machine's cores: `fleet/cpu_share.py`).

A type missing from the table still gets its memory from AWS's sizing rule (vCPUs × the
family's GiB per vCPU: c 2, m 4, r 8, ...) and its vCPUs from the size name; names that
match neither give None (callers fall back to this machine).
"""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass
from importlib import resources

GIB = 1024**3
TABLE = "instance_types.csv"

_GIB_PER_VCPU = {"c": 2, "m": 4, "r": 8, "g": 4, "inf": 2, "x": 16, "z": 8, "p": 7.625}
_VCPUS = {"large": 2, "xlarge": 4, "metal": 96}
_BURSTABLE_GIB = {"nano": 0.5, "micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16}
_BURSTABLE_VCPUS = {"nano": 2, "micro": 2, "small": 2, "medium": 2, "large": 2, "xlarge": 4}
_TYPE = re.compile(r"^ml\.([a-z]+)(\d+)[a-z]*\.(\d*)(x?large|metal|medium|small|micro|nano)$")


@dataclass(frozen=True)
class InstanceType:
    """One instance type's resources (`accelerator` is "" for CPU-only types)."""

    name: str
    vcpus: int
    memory_bytes: int
    gpus: int = 0
    accelerator: str = ""


@functools.cache
def table() -> dict[str, InstanceType]:
    """Every type of the data table, by name."""
    text = resources.files("modelhost.resources").joinpath(TABLE).read_text(encoding="utf-8")
    out = {}
    for row in csv.DictReader(io.StringIO(text)):
        name = row["instance_type"].strip()
        out[name] = InstanceType(
            name=name,
            vcpus=int(row["vcpus"]),
            memory_bytes=int(float(row["memory_gib"]) * GIB),
            gpus=int(row["gpus"] or 0),
            accelerator=row["accelerator"].strip(),
        )
    return out


def instance_type(name: str | None) -> InstanceType | None:
    """The resources of `name`: from the table, else from the naming rule, else None."""
    key = (name or "").strip().lower()
    known = table().get(key)
    if known is not None:
        return known
    return _by_rule(key)


def instance_memory_bytes(name: str | None) -> int | None:
    """Memory of `name` in bytes, or None when the type is not recognised."""
    found = instance_type(name)
    return found.memory_bytes if found is not None else None


def instance_vcpus(name: str | None) -> int | None:
    """vCPUs of `name`, or None when the type is not recognised."""
    found = instance_type(name)
    return found.vcpus if found is not None else None


def _by_rule(name: str) -> InstanceType | None:
    match = _TYPE.match(name)
    if match is None:
        return None
    family, _generation, multiple, size = match.groups()
    if family == "t":
        gib = _BURSTABLE_GIB.get(size)
        if gib is None:
            return None
        times = int(multiple) if multiple else 1
        return InstanceType(name, _BURSTABLE_VCPUS[size] * times, int(gib * times * GIB))
    per_vcpu = _GIB_PER_VCPU.get(family)
    vcpus = _VCPUS.get(size)
    if per_vcpu is None or vcpus is None:
        return None
    if multiple:
        vcpus = 4 * int(multiple)  # 2xlarge = 8 vCPUs, 12xlarge = 48
    return InstanceType(name, vcpus, int(vcpus * per_vcpu * GIB))
