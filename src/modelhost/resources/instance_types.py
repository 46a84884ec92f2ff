"""Memory of SageMaker instance types (`ml.m5.large` → 8 GiB), without I/O.

Used for budgets that SageMaker derives from the instance, such as how many models a
multi-model instance keeps loaded. The rule is AWS's sizing: memory = vCPUs × the
family's GiB per vCPU (c: 2, m: 4, r: 8, ...), with vCPUs from the size name; the
burstable t2/t3 types are listed as they are. Unknown types give None (callers fall
back to this machine's memory).
"""

from __future__ import annotations

import re

GIB = 1024**3

_GIB_PER_VCPU = {"c": 2, "m": 4, "r": 8, "g": 4, "inf": 2, "x": 16, "z": 8, "p": 7.625}
_VCPUS = {"large": 2, "xlarge": 4, "metal": 96}
_BURSTABLE_GIB = {"nano": 0.5, "micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16}
_TYPE = re.compile(r"^ml\.([a-z]+)(\d+)[a-z]*\.(\d*)(x?large|metal|medium|small|micro|nano)$")


def instance_memory_bytes(instance_type: str | None) -> int | None:
    """Memory of `instance_type` in bytes, or None when the type is not recognised."""
    match = _TYPE.match((instance_type or "").strip().lower())
    if match is None:
        return None
    family, _generation, multiple, size = match.groups()
    if family == "t":
        gib = _BURSTABLE_GIB.get(size)
        if gib is None:
            return None
        return int(gib * (int(multiple) if multiple else 1) * GIB)
    per_vcpu = _GIB_PER_VCPU.get(family)
    vcpus = _VCPUS.get(size)
    if per_vcpu is None or vcpus is None:
        return None
    if multiple:
        vcpus = 4 * int(multiple)  # 2xlarge = 8 vCPUs, 12xlarge = 48
    return int(vcpus * per_vcpu * GIB)
