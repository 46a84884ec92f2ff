"""CreateTransformJob's request rules and the prediction-store option (no I/O)."""

from __future__ import annotations

import re
from typing import Any

from modelhost.errors import ValidationException
from modelhost.jobs import dataprocessing

STORE_TAG = "modelhost:prediction-store"
KEY_TAG = "modelhost:prediction-key"
_STORE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def prediction_store_option(
    tags: list[dict[str, str]] | None, given: dict[str, Any] | None
) -> dict[str, str] | None:
    """The job's prediction-store option, from the native `PredictionStore` member or
    (for boto3 users) the `modelhost:prediction-store` / `modelhost:prediction-key` tags."""
    by_tag = {t.get("Key"): t.get("Value") for t in tags or []}
    store = (given or {}).get("StoreName") or by_tag.get(STORE_TAG)
    key = (given or {}).get("KeyColumn") or by_tag.get(KEY_TAG)
    if store is None and key is None:
        return None
    if not store or not key:
        raise ValidationException(
            f"A prediction store needs both a store name and a key column (tags {STORE_TAG} "
            f"and {KEY_TAG}, or PredictionStore.StoreName and PredictionStore.KeyColumn)."
        )
    if not isinstance(store, str) or not _STORE_NAME_RE.match(store):
        raise ValidationException(
            f"Prediction store name '{store}' must be 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit."
        )
    return {"StoreName": store, "KeyColumn": str(key)}


def check_request(p: dict[str, Any]) -> None:
    """The CreateTransformJob rules the service model cannot express."""
    name = p["TransformJobName"]
    tin = p["TransformInput"]
    split = tin.get("SplitType", "None")
    if split in ("RecordIO", "TFRecord"):
        raise ValidationException(
            f"Transform job {name}: SplitType {split} is not supported by this modelhost "
            "version; use None or Line."
        )
    source = tin["DataSource"].get("S3DataSource")
    if not source:
        raise ValidationException(
            f"Transform job {name}: TransformInput.DataSource.S3DataSource is required."
        )
    if source["S3DataType"] not in ("S3Prefix", "ManifestFile"):
        raise ValidationException(
            f"Transform job {name}: S3DataType {source['S3DataType']} is not supported for "
            "transform jobs; use S3Prefix or ManifestFile."
        )
    if p.get("BatchStrategy") and split == "None":
        raise ValidationException(
            f"Transform job {name}: BatchStrategy {p['BatchStrategy']} needs SplitType Line; "
            "with SplitType None each object is one request."
        )
    mct, payload = int(p.get("MaxConcurrentTransforms") or 0), int(p.get("MaxPayloadInMB", 6))
    if mct * payload > 100:
        raise ValidationException(
            f"Transform job {name}: MaxConcurrentTransforms ({mct}) × MaxPayloadInMB "
            f"({payload}) must be at most 100."
        )
    try:
        dp = dataprocessing.build(
            p.get("DataProcessing"), tin.get("ContentType"), p["TransformOutput"].get("Accept")
        )
    except ValueError as exc:
        raise ValidationException(f"Transform job {name}: {exc}") from exc
    if (
        not dp.identity
        and dp.csv_input
        and (split != "Line" or p["TransformOutput"].get("AssembleWith") != "Line")
    ):
        raise ValidationException(
            f"Transform job {name}: DataProcessing with text/csv needs SplitType Line and "
            "AssembleWith Line."
        )
