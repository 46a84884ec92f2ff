"""The hierarchy's base and the SageMaker control-plane and runtime errors."""

from __future__ import annotations


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


class ThrottlingException(ModelhostError):
    """A serverless variant runs MaxConcurrency invocations already (botocore retries it)."""

    code, status = "ThrottlingException", 400


class InternalFailure(ModelhostError):
    code = "InternalFailure"
    status = 500


class ServiceUnavailable(ModelhostError):
    code = "ServiceUnavailable"
    status = 503


class FencedOut(ServiceUnavailable):
    """A write only the leader (or a job's claimant) may make, refused because this
    gateway no longer holds the lead (or the claim): another gateway may hold it now."""


class InternalDependencyException(ModelhostError):
    code = "InternalDependencyException"
    status = 530


class ModelStreamError(ModelhostError):
    """A response stream broke after it started (InvokeEndpointWithResponseStream): sent as
    the stream's last event, not as an HTTP status. `ErrorCode` is SageMaker's
    `ModelInvocationTimeExceeded` or `StreamBroken`."""

    code = "ModelStreamError"
    status = 424

    def __init__(self, message: str, error_code: str) -> None:
        super().__init__(message)
        self.error_code = error_code

    def extra_fields(self) -> dict[str, object]:
        return {"ErrorCode": self.error_code}


class InternalStreamFailure(ModelhostError):
    """modelhost failed while relaying a response stream (sent as the last event)."""

    code = "InternalStreamFailure"
    status = 500


# --- internal, never sent as-is ----------------------------------------------------------


class ArtifactError(ModelhostError):
    """A model artifact could not be fetched or unpacked; the text becomes a FailureReason."""

    code = "ValidationException"
    status = 400


# --- native REST APIs (/api, prediction store, access keys) -------------------------------


class DatasetError(ValidationException):
    """A Model Monitor dataset (baseline data, data capture, a statistics or constraints
    file) cannot be read as given; the message says where and why. A processing job that
    meets one fails with it as its FailureReason."""


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


class IncompleteBody(ModelhostError):
    """The client went away (or was cut off as too slow) before its whole body arrived:
    the request is not processed on the part that came (S3's code for a short body)."""

    code = "IncompleteBody"
    status = 400


# --- gateway start-up -------------------------------------------------------------------


class UnsafeConfiguration(ModelhostError):
    """Settings the gateway refuses to start with (e.g. auth off on a public address)."""

    code = "UnsafeConfiguration"
    status = 500
