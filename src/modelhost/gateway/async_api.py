"""The HTTP edge of InvokeEndpointAsync: `POST /endpoints/{EndpointName}/async-invocations`.

Headers are read and validated as botocore's sagemaker-runtime model names and bounds
them (X-Amzn-SageMaker-InputLocation, -Content-Type, -Accept, -Custom-Attributes,
-Inference-Id, -RequestTTLSeconds, -InvocationTimeoutSeconds, -S3OutputPathExtension,
-Filename; or an inline body of at most 128,000 bytes). The request is written to the
durable queue before the 202 goes out, with InferenceId in the JSON body and the output
and failure locations in headers, exactly where boto3 reads them.
"""

from __future__ import annotations

import asyncio
import json
import re

from modelhost.errors import ValidationError, ValidationException
from modelhost.gateway.asgi import Receive, Scope, read_body
from modelhost.jobs.asyncinf.service import AsyncInference, Submission
from modelhost.settings import Settings
from modelhost.store.locations import confine

MAX_INLINE_BODY_BYTES = 128_000
_H = "x-amzn-sagemaker-"
_INFERENCE_ID = re.compile(r"\S[\x20-\x7e]*")
_EXTENSION = re.compile(r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+")
_FILENAME = re.compile(r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_.]*")
Response = tuple[int, list[tuple[bytes, bytes]], bytes]


def _refuse(value: str, member: str, rule: str) -> ValidationError:
    return ValidationError(
        f"1 validation error detected: Value '{value[:200]}' at '{member}' failed to satisfy "
        f"constraint: {rule}"
    )


def _text(headers: dict[bytes, bytes], name: str, member: str, max_len: int) -> str | None:
    raw = headers.get((_H + name).encode())
    if raw is None:
        return None
    value = raw.decode("latin-1")
    if len(value) > max_len:
        raise _refuse(value, member, f"Member must have length less than or equal to {max_len}")
    if not value.isascii():
        raise _refuse(value, member, "Member must contain only ASCII")
    return value


def _matching(value: str | None, member: str, pattern: re.Pattern[str], shown: str) -> None:
    if value is not None and (not value or pattern.fullmatch(value) is None):
        raise _refuse(value, member, f"Member must satisfy regular expression pattern: {shown}")


def _integer(headers: dict[bytes, bytes], name: str, member: str, lo: int, hi: int) -> int | None:
    value = _text(headers, name, member, 16)
    if value is None:
        return None
    if not value.strip().lstrip("-").isdigit():
        raise _refuse(value, member, "Member must be an integer")
    number = int(value)
    if not lo <= number <= hi:
        rule = f"greater than or equal to {lo}" if number < lo else f"less than or equal to {hi}"
        raise _refuse(value, member, f"Member must have value {rule}")
    return number


def parse_submission(
    endpoint: str, headers: dict[bytes, bytes], body: bytes, settings: Settings
) -> Submission:
    """The request's members, checked against the runtime model's rules."""
    location = _text(headers, "inputlocation", "inputLocation", 1024)
    if (location is None) == (not body):
        raise ValidationError(
            "Provide exactly one of InputLocation (X-Amzn-SageMaker-InputLocation) and an "
            "inline Body."
        )
    if len(body) > MAX_INLINE_BODY_BYTES:
        raise _refuse(
            f"{len(body)} bytes",
            "body",
            f"Member must have length less than or equal to {MAX_INLINE_BODY_BYTES}",
        )
    if location is not None:
        if location.startswith("https://"):
            raise ValidationError(
                "InputLocation https:// is not supported by this modelhost version; use an "
                "s3:// URI, a file:// URL or a path on the server."
            )
        try:
            confine(location, settings.allowed_data_prefixes, "inputLocation", [settings.home])
        except ValidationException as exc:
            raise ValidationError(exc.message) from exc
    inference_id = _text(headers, "inference-id", "inferenceId", 64)
    _matching(inference_id, "inferenceId", _INFERENCE_ID, r"\A\S[\p{Print}]*\z")
    extension = _text(headers, "s3outputpathextension", "s3OutputPathExtension", 512)
    _matching(extension, "s3OutputPathExtension", _EXTENSION, _EXTENSION.pattern)
    if extension is not None and ".." in extension.split("/"):
        raise _refuse(extension, "s3OutputPathExtension", "Member must not contain '..'")
    filename = _text(headers, "filename", "filename", 32)
    _matching(filename, "filename", _FILENAME, _FILENAME.pattern)
    return Submission(
        endpoint=endpoint,
        input_location=location,
        payload=body or None,
        content_type=_text(headers, "content-type", "contentType", 1024),
        accept=_text(headers, "accept", "accept", 1024),
        custom_attributes=_text(headers, "custom-attributes", "customAttributes", 1024),
        inference_id=inference_id,
        ttl_s=_integer(headers, "requestttlseconds", "requestTTLSeconds", 60, 21600),
        invocation_timeout_s=_integer(
            headers, "invocationtimeoutseconds", "invocationTimeoutSeconds", 1, 3600
        ),
        output_extension=extension,
        filename=filename,
    )


class AsyncRuntimeAPI:
    """Serves InvokeEndpointAsync for the runtime edge (gateway/runtime_api.py)."""

    def __init__(self, service: AsyncInference, settings: Settings) -> None:
        self.service = service
        self.settings = settings

    async def invoke_async(
        self, endpoint: str, scope: Scope, receive: Receive, request_id: str
    ) -> Response:
        headers = dict(scope["headers"])
        body = await read_body(receive, MAX_INLINE_BODY_BYTES + 1)
        submission = parse_submission(endpoint, headers, body, self.settings)
        # Written to the queue (a committed transaction) before the 202 is sent.
        row = await asyncio.to_thread(self.service.submit, submission)
        self.service.workers.wake()
        data = json.dumps({"InferenceId": row.inference_id}).encode()
        answer = [
            (b"content-type", b"application/json"),
            (b"x-amzn-sagemaker-outputlocation", row.output_location.encode()),
            (b"x-amzn-requestid", request_id.encode()),
            (b"content-length", str(len(data)).encode()),
        ]
        if row.failure_location:
            answer.append((b"x-amzn-sagemaker-failurelocation", row.failure_location.encode()))
        return 202, answer, data
