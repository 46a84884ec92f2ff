"""Errors raised inside an instance (codecs, runtimes, script mode)."""

from __future__ import annotations

from collections.abc import Iterable

from modelhost.errors.core import ModelhostError

# --- inside an instance (codecs, runtimes, script mode) ---------------------------------
#
# These never reach `gateway.errors` as they are: the container answers /invocations with
# `status_code` and `message`, and the gateway turns that answer into a ModelError (424)
# carrying it as OriginalStatusCode/OriginalMessage. `status_code` and `message` are the
# attribute names of the inference toolkit's `BaseInferenceToolkitError`, which script-mode
# users raise and catch, so the container treats our errors and a script's alike.


class InstanceError(ModelhostError):
    """Base of errors raised inside an instance; `status_code` is the container's answer."""

    code = "ModelError"
    status = 424
    status_code: int = 500

    def extra_fields(self) -> dict[str, object]:
        # Mapped directly (a runtime run in-process), it reads as the container's answer.
        return {"OriginalStatusCode": self.status_code, "OriginalMessage": self.message}


class CodecError(InstanceError):
    """Base of codec errors; `message` is a one-line text that names the rule broken.

    Statuses follow SageMaker's XGBoost/legacy containers (which clients expect): a body
    that cannot be decoded or an unknown Content-Type is 415, an Accept we cannot produce
    is 406.
    """

    status_code = 415


class DecodeError(CodecError):
    """The body does not parse as its Content-Type says (415, CodecError's status)."""


class UnsupportedContentType(CodecError):
    """No decoder for this Content-Type (415, CodecError's status)."""

    def __init__(self, content_type: str | None, supported: Iterable[str]) -> None:
        super().__init__(
            f"Unsupported Content-Type {content_type!r}: use one of {', '.join(supported)}"
        )


class UnsupportedAccept(CodecError):
    """No encoder for any type the Accept header lists (406)."""

    status_code = 406

    def __init__(self, accept: str | None, supported: Iterable[str]) -> None:
        super().__init__(f"Unsupported Accept {accept!r}: use one of {', '.join(supported)}")


class EncodeError(CodecError):
    """The prediction cannot be written in the chosen type, e.g. 3-D as CSV (406)."""

    status_code = 406


class InferenceError(InstanceError):
    """Base of runtime errors; `message` is one line naming the rule broken (500)."""

    status_code = 500


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
