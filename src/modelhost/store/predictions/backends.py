"""Choosing a prediction-store backend from `Settings.prediction_store_url`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from modelhost.errors import ValidationException
from modelhost.settings import Settings
from modelhost.store.predictions.base import PredictionStore

_FORMS = (
    "'embedded', 'embedded:///path/to/file.db', 'redis://host:port/db' (or rediss://, "
    "unix://), 'dynamodb://TABLE?endpoint_url=URL&region=REGION'"
)


def open_prediction_store(settings: Settings) -> PredictionStore:
    """The backend `settings.prediction_store_url` names (imports its client lazily)."""
    url = settings.prediction_store_url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else url.lower()
    if scheme == "embedded":
        from modelhost.store.predictions.embedded import EmbeddedPredictionStore

        path = urlsplit(url).path if "://" in url else ""
        return EmbeddedPredictionStore(Path(path) if path else settings.prediction_store_path)
    if scheme in ("redis", "rediss", "unix"):
        from modelhost.store.predictions.redis_store import RedisPredictionStore

        return RedisPredictionStore(url)
    if scheme == "dynamodb":
        from modelhost.store.predictions.dynamodb import DynamoDBPredictionStore

        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint_url", "region"}
        if not parts.netloc or unknown:
            raise ValidationException(
                f"MODELHOST_PREDICTION_STORE_URL '{url}' is not a DynamoDB URL of the form "
                "dynamodb://TABLE?endpoint_url=URL&region=REGION"
                + (f" (unknown options: {', '.join(sorted(unknown))})" if unknown else "")
            )
        return DynamoDBPredictionStore(
            parts.netloc, query.get("endpoint_url"), query.get("region") or settings.region
        )
    raise ValidationException(
        f"MODELHOST_PREDICTION_STORE_URL '{url}' names no prediction store backend; use {_FORMS}."
    )
