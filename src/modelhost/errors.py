"""One error hierarchy. Each error carries its SageMaker error code and HTTP status.

`gateway.errors` is the only place that turns these into HTTP answers. Control-plane
errors are `...Exception`-style codes (JSON 1.1 protocol); runtime errors use the
runtime's codes (`ValidationError`, `ModelError`, ...), as boto3 expects. Errors raised
inside an instance (codecs, runtimes) also carry the container's `status_code`.
"""

from __future__ import annotations

from collections.abc import Iterable


class ModelhostError(Exception):
    """Base of every error modelhost raises on purpose."""

    code: str = "InternalFailure"
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def extra_fields(self) -> dict[str, object]:
        """Modeled members that travel beside `Message` in the error body."""
        return {}


# --- control plane (SageMaker JSON 1.1) -------------------------------------------------


class ValidationException(ModelhostError):
    """Bad input, or a missing endpoint/config/model (boto3's waiters rely on this code)."""

    code = "ValidationException"
    status = 400


class ResourceNotFound(ModelhostError):
    code = "ResourceNotFound"
    status = 400


class ResourceInUse(ModelhostError):
    code = "ResourceInUse"
    status = 400


class ResourceLimitExceeded(ModelhostError):
    code = "ResourceLimitExceeded"
    status = 400


class UnknownOperation(ModelhostError):
    code = "UnknownOperationException"
    status = 400


class SerializationException(ModelhostError):
    """A JSON 1.1 request body that is not JSON, or not a JSON object."""

    code = "SerializationException"
    status = 400


class JsonTooDeep(ValidationException):
    """A JSON request body nested deeper than `max_json_depth`."""


class EndpointNotFound(ValidationException):
    """The endpoint does not exist (SageMaker answers ValidationException here too)."""


# --- runtime (sagemaker-runtime, REST JSON) ---------------------------------------------


class ValidationError(ModelhostError):
    """Runtime bad input: unknown endpoint, bad header, empty body."""

    code = "ValidationError"
    status = 400


class PayloadTooLarge(ValidationError):
    """Body over the 6 MiB limit. SageMaker answers 413 for this."""

    status = 413


class ModelError(ModelhostError):
    """The container answered with a 4xx/5xx; carries its status and message."""

    code = "ModelError"
    status = 424

    def __init__(
        self,
        message: str,
        original_status_code: int,
        original_message: str,
        log_stream_arn: str | None = None,
    ) -> None:
        super().__init__(message)
        self.original_status_code = original_status_code
        self.original_message = original_message
        self.log_stream_arn = log_stream_arn

    def extra_fields(self) -> dict[str, object]:
        fields: dict[str, object] = {
            "OriginalStatusCode": self.original_status_code,
            "OriginalMessage": self.original_message,
        }
        if self.log_stream_arn:
            fields["LogStreamArn"] = self.log_stream_arn
        return fields


class ModelNotReady(ModelhostError):
    code = "ModelNotReadyException"
    status = 429


class InternalFailure(ModelhostError):
    code = "InternalFailure"
    status = 500


class ServiceUnavailable(ModelhostError):
    code = "ServiceUnavailable"
    status = 503


class InternalDependencyException(ModelhostError):
    code = "InternalDependencyException"
    status = 530


# --- internal, never sent as-is ----------------------------------------------------------


class ArtifactError(ModelhostError):
    """A model artifact could not be fetched or unpacked; the text becomes a FailureReason."""

    code = "ValidationException"
    status = 400


# --- native REST APIs (/api, prediction store, access keys) -------------------------------


class NotFound(ModelhostError):
    """A native REST resource (alarm, endpoint, access key) does not exist (a REST 404)."""

    code = "ResourceNotFound"
    status = 404


class MethodNotAllowed(ModelhostError):
    """A native REST path asked with a method it does not serve."""

    code = "MethodNotAllowed"
    status = 405


class PredictionNotFound(NotFound):
    """A prediction store, or a key in its current run, does not exist (a REST 404)."""


class PredictionStoreUnavailable(ModelhostError):
    """The prediction store's backend (Redis, DynamoDB) did not answer or refused a call."""

    code = "ServiceUnavailable"
    status = 503


# --- authentication, authorization and request limits (every API) -----------------------


class MissingAuthenticationTokenException(ModelhostError):
    """No Authorization header and no presigned query string."""

    code = "MissingAuthenticationTokenException"
    status = 403


class IncompleteSignatureException(ModelhostError):
    """An Authorization header or presigned query that is not a well-formed SigV4."""

    code = "IncompleteSignatureException"
    status = 403


class InvalidSignatureException(ModelhostError):
    """The signature does not match, or its time is outside the allowed window."""

    code = "InvalidSignatureException"
    status = 403


class UnrecognizedClientException(ModelhostError):
    """The access key id is unknown or revoked."""

    code = "UnrecognizedClientException"
    status = 403


class AccessDeniedException(ModelhostError):
    """A valid key whose role may not perform this action on this resource."""

    code = "AccessDeniedException"
    status = 403


class RequestHeadersTooLarge(ModelhostError):
    code = "RequestHeaderFieldsTooLarge"
    status = 431


# --- gateway start-up -------------------------------------------------------------------


class UnsafeConfiguration(ModelhostError):
    """Settings the gateway refuses to start with (e.g. auth off on a public address)."""

    code = "UnsafeConfiguration"
    status = 500


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
    """The body does not parse as its Content-Type says (415)."""

    status_code = 415


class UnsupportedContentType(CodecError):
    """No decoder for this Content-Type (415)."""

    status_code = 415

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


# --- CloudWatch (rpc-v2-cbor and query protocols; awsQueryCompatible codes) -------------


class InvalidParameterValue(ModelhostError):
    code = "InvalidParameterValue"
    status = 400


class MissingParameter(ModelhostError):
    code = "MissingParameter"
    status = 400


class InvalidParameterCombination(ModelhostError):
    code = "InvalidParameterCombination"
    status = 400


class CloudWatchResourceNotFound(ModelhostError):
    """CloudWatch's ResourceNotFound (404), e.g. SetAlarmState on a missing alarm."""

    code = "ResourceNotFound"
    status = 404


# --- CloudWatch Logs (JSON 1.1, `Logs_20140328.*`) ------------------------------------------


class LogResourceNotFound(ModelhostError):
    """A log group or log stream that does not exist (CloudWatch Logs' code)."""

    code = "ResourceNotFoundException"
    status = 400


class InvalidParameterException(ModelhostError):
    """A CloudWatch Logs parameter that is malformed, out of range or in conflict."""

    code = "InvalidParameterException"
    status = 400


# --- Application Auto Scaling (JSON 1.1, `AnyScaleFrontendService.*`) ----------------------


class ObjectNotFoundException(ModelhostError):
    """A scalable target, scaling policy or scheduled action that does not exist."""

    code = "ObjectNotFoundException"
    status = 400


class ConcurrentUpdateException(ModelhostError):
    """Another change to the same scalable target is in progress."""

    code = "ConcurrentUpdateException"
    status = 400


class FailedResourceAccessException(ModelhostError):
    """The resource a scalable target names (the endpoint variant) cannot be reached."""

    code = "FailedResourceAccessException"
    status = 400


class ScalingResourceNotFound(ModelhostError):
    """TagResource and friends on an ARN that names nothing (Application Auto Scaling)."""

    code = "ResourceNotFoundException"
    status = 400


class LimitExceededException(ModelhostError):  # too many policies or actions on a target
    code = "LimitExceededException"
    status = 400


class InvalidNextTokenException(ModelhostError):  # a NextToken this API did not hand out
    code = "InvalidNextTokenException"
    status = 400
