"""Errors raised by runtimes. `status_code` is the HTTP status the container answers with.

The attribute names (`status_code`, `message`) match the inference toolkit's
`BaseInferenceToolkitError`, so the container treats our errors and a user script's
errors the same way.
"""

from __future__ import annotations


class InferenceError(Exception):
    """Base of runtime errors; `message` is one line naming the rule broken."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(InferenceError):
    """The request decoded but cannot be predicted on, e.g. wrong feature count (400)."""

    status_code = 400


class PredictionFailed(InferenceError):
    """The framework rejected the input during predict (400, as SageMaker's XGBoost)."""

    status_code = 400


class ModelLoadError(InferenceError):
    """The model could not be loaded. `message` becomes the endpoint's FailureReason,
    so it says what is wrong and what to do about it."""

    status_code = 500
