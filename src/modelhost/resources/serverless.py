"""A production variant's ServerlessConfig as a typed value (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
MEMORY_STEP_MB = 1024


@dataclass(frozen=True)
class ServerlessConfig:
    """MemorySizeInMB (the memory limit of each instance), MaxConcurrency (concurrent
    invocations of the variant; more are throttled) and ProvisionedConcurrency (instances
    kept warm; None or 0: none, the variant scales to zero when idle)."""

    memory_size_mb: int
    max_concurrency: int
    provisioned_concurrency: int | None = None

    @property
    def memory_bytes(self) -> int:
        return self.memory_size_mb * MIB

    @property
    def warm(self) -> int:
        """Instances kept running while idle."""
        return self.provisioned_concurrency or 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> ServerlessConfig:
        provisioned = spec.get("ProvisionedConcurrency")
        return cls(
            memory_size_mb=int(spec["MemorySizeInMB"]),
            max_concurrency=int(spec["MaxConcurrency"]),
            provisioned_concurrency=None if provisioned is None else int(provisioned),
        )

    def to_spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "MemorySizeInMB": self.memory_size_mb,
            "MaxConcurrency": self.max_concurrency,
        }
        if self.provisioned_concurrency is not None:
            out["ProvisionedConcurrency"] = self.provisioned_concurrency
        return out
