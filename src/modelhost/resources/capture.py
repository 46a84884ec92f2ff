"""Data capture settings of an endpoint config (`DataCaptureConfig`), parsed once.

SageMaker's shape: EnableCapture, InitialSamplingPercentage (0-100), DestinationS3Uri,
KmsKeyId, CaptureOptions (Input, Output or InputAndOutput) and CaptureContentTypeHeader
(the content types whose bodies are recorded as CSV or JSON text; every other body is
recorded base64-encoded). The parsed form travels in the routing snapshot, so the request
path decides on a capture with one attribute read and one random draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelhost.errors import ValidationException

DEFAULT_CSV_TYPES = frozenset({"text/csv"})
DEFAULT_JSON_TYPES = frozenset({"application/json", "application/jsonlines"})


@dataclass(frozen=True)
class CaptureConfig:
    """What an endpoint captures and where (see the module docstring)."""

    sampling_percentage: int
    destination: str
    capture_input: bool
    capture_output: bool
    csv_types: frozenset[str] = DEFAULT_CSV_TYPES
    json_types: frozenset[str] = DEFAULT_JSON_TYPES
    kms_key_id: str = ""
    enabled: bool = True
    sampling_fraction: float = field(init=False, default=0.0, compare=False)

    def __post_init__(self) -> None:
        # Read on every request of a capturing endpoint: computed once.
        object.__setattr__(self, "sampling_fraction", self.sampling_percentage / 100.0)

    def encoding(self, content_type: str) -> str:
        """SageMaker's `encoding` of a body with this content type: CSV, JSON or BASE64."""
        base = content_type.split(";", 1)[0].strip().lower()
        if base in self.csv_types:
            return "CSV"
        if base in self.json_types:
            return "JSON"
        return "BASE64"

    def summary(self) -> dict[str, Any]:
        """DescribeEndpoint's DataCaptureConfigSummary."""
        return {
            "EnableCapture": self.enabled,
            "CaptureStatus": "Started" if self.enabled else "Stopped",
            "CurrentSamplingPercentage": self.sampling_percentage,
            "DestinationS3Uri": self.destination,
            "KmsKeyId": self.kms_key_id,
        }


def parse_capture(spec: dict[str, Any] | None) -> CaptureConfig | None:
    """The endpoint config's DataCaptureConfig, or None when it has none.

    The types, lengths and enums were checked against botocore's model already; this
    adds the rules across members, naming the member (ValidationException)."""
    if not spec:
        return None
    modes = [o.get("CaptureMode") for o in spec.get("CaptureOptions") or []]
    if len(set(modes)) != len(modes):
        raise ValidationException(
            f"DataCaptureConfig.CaptureOptions: each CaptureMode may appear only once; got {modes}."
        )
    header = spec.get("CaptureContentTypeHeader") or {}
    csv_types = _types(header, "CsvContentTypes", DEFAULT_CSV_TYPES)
    json_types = _types(header, "JsonContentTypes", DEFAULT_JSON_TYPES)
    both = csv_types & json_types
    if both:
        raise ValidationException(
            "DataCaptureConfig.CaptureContentTypeHeader: a content type may be listed as CSV "
            f"or as JSON, not both: {sorted(both)}."
        )
    return CaptureConfig(
        sampling_percentage=int(spec["InitialSamplingPercentage"]),
        destination=str(spec["DestinationS3Uri"]),
        capture_input=bool({"Input", "InputAndOutput"} & set(modes)),
        capture_output=bool({"Output", "InputAndOutput"} & set(modes)),
        csv_types=csv_types,
        json_types=json_types,
        kms_key_id=str(spec.get("KmsKeyId") or ""),
        enabled=bool(spec.get("EnableCapture", True)),
    )


def _types(header: dict[str, Any], member: str, default: frozenset[str]) -> frozenset[str]:
    given = header.get(member)
    if given is None:
        return default
    out = set()
    for value in given:
        text = str(value).strip().lower()
        if not text or "/" not in text:
            raise ValidationException(
                f"DataCaptureConfig.CaptureContentTypeHeader.{member}: '{value}' is not a "
                "content type (type/subtype)."
            )
        out.add(text)
    return frozenset(out)
