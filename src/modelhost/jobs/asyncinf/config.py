"""An endpoint's AsyncInferenceConfig as the workers use it, and where outputs are named."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUCCESS_TOPIC = "SUCCESS_NOTIFICATION_TOPIC"
ERROR_TOPIC = "ERROR_NOTIFICATION_TOPIC"


@dataclass(frozen=True)
class AsyncEndpointConfig:
    """OutputConfig and ClientConfig of one async endpoint (topics may be SNS ARNs or
    http(s):// webhook URLs)."""

    output_path: str
    failure_path: str | None
    max_concurrent_per_instance: int
    success_topic: str | None = None
    error_topic: str | None = None
    include_response_in: frozenset[str] = frozenset()
    first_variant: str = "AllTraffic"


def async_config(spec: dict[str, Any], default_concurrency: int) -> AsyncEndpointConfig | None:
    """The AsyncInferenceConfig of an endpoint's stored spec (its config snapshot), or None."""
    config = spec.get("Config") or {}
    doc = config.get("AsyncInferenceConfig")
    if not doc:
        return None
    out = doc.get("OutputConfig") or {}
    notes = out.get("NotificationConfig") or {}
    client = doc.get("ClientConfig") or {}
    variants = config.get("ProductionVariants") or [{}]
    return AsyncEndpointConfig(
        output_path=out.get("S3OutputPath") or "",
        failure_path=out.get("S3FailurePath") or None,
        max_concurrent_per_instance=int(
            client.get("MaxConcurrentInvocationsPerInstance") or default_concurrency
        ),
        success_topic=notes.get("SuccessTopic") or None,
        error_topic=notes.get("ErrorTopic") or None,
        include_response_in=frozenset(notes.get("IncludeInferenceResponseIn") or ()),
        first_variant=str(variants[0].get("VariantName", "AllTraffic")),
    )


def _join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for part in parts:
        if part:
            out += "/" + part.strip("/")
    return out


def locations(
    config: AsyncEndpointConfig, request_id: str, extension: str | None, filename: str | None
) -> tuple[str, str]:
    """(OutputLocation, FailureLocation) of a request: `<S3OutputPath>[/<extension>]/
    <filename or id>.out` and `<S3FailurePath or S3OutputPath>/.../<id>-error.out`."""
    name = filename or f"{request_id}.out"
    output = _join(config.output_path, extension or "", name)
    failure_name = f"{filename}-error.out" if filename else f"{request_id}-error.out"
    failure = _join(config.failure_path or config.output_path, extension or "", failure_name)
    return output, failure
