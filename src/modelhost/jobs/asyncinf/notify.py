"""Success and error notifications of async requests, in SageMaker's message format.

A topic is an SNS topic ARN (`arn:aws:sns:...`, published through boto3's SNS client at
`sns_endpoint_url`) or an `http(s)://` URL (a webhook: the same JSON is POSTed). Each
delivery is retried with exponential backoff; the queue row keeps `notify_pending` until
delivery ends, so a gateway that dies first notifies after its restart (at least once).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import threading
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from modelhost.jobs.asyncinf.lease import backoff_s
from modelhost.store.queue import QueuedRequest, RequestStatus

log = logging.getLogger("modelhost.async")

MAX_INCLUDED_RESPONSE_BYTES = 128 * 1024  # SageMaker includes a response up to 128 KB
_WEBHOOK_TIMEOUT_S = 10.0


def _iso(seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def message(request: QueuedRequest, region: str, response: bytes | None = None) -> dict[str, Any]:
    """The notification for a finished request (SageMaker's InferenceResult event)."""
    succeeded = request.status is RequestStatus.SUCCEEDED
    params: dict[str, Any] = {
        "endpointName": request.endpoint,
        "inputLocation": request.input_location or "",
    }
    for header, member in (
        ("ContentType", "contentType"),
        ("Accept", "accept"),
        ("CustomAttributes", "customAttributes"),
    ):
        if request.headers.get(header):
            params[member] = request.headers[header]
    answer: dict[str, Any] = {"contentType": request.response_type or ""}
    if succeeded:
        answer["outputLocation"] = request.output_location
    else:
        answer["failureLocation"] = request.failure_location or request.output_location
    body: dict[str, Any] = {
        "awsRegion": region,
        "eventTime": _iso(request.finished_s or request.received_s),
        "receivedTime": _iso(request.received_s),
        "invocationStatus": "Completed" if succeeded else "Failed",
        "requestParameters": params,
        "responseParameters": answer,
        "inferenceId": request.inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    if not succeeded:
        body["failureReason"] = request.failure_reason or ""
    if response is not None and len(response) <= MAX_INCLUDED_RESPONSE_BYTES:
        body["responseBody"] = {
            "content": base64.b64encode(response).decode("ascii"),
            "encoding": "BASE64",
        }
    return body


Send = Callable[[str, str], Awaitable[None]]
"""Deliver one JSON text to one topic, raising on failure."""


class Notifier:
    """Delivers notifications to SNS topics and webhooks, with retries."""

    def __init__(
        self,
        sns_endpoint_url: str | None,
        region: str,
        attempts: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sns_endpoint_url = sns_endpoint_url
        self.region = region
        self.attempts = max(attempts, 1)
        self.sleep = sleep
        self._sns: dict[str, Any] = {}
        self._lock = threading.Lock()

    async def deliver(self, topic: str, text: str, send: Send | None = None) -> bool:
        """True once `topic` accepted `text`; False after every attempt failed."""
        send = send or self._send
        for attempt in range(1, self.attempts + 1):
            try:
                await send(topic, text)
                return True
            except Exception as exc:
                log.warning("notification to %s failed (attempt %d): %s", topic, attempt, exc)
                if attempt < self.attempts:
                    await self.sleep(backoff_s(attempt))
        return False

    async def _send(self, topic: str, text: str) -> None:
        if topic.startswith(("http://", "https://")):
            await asyncio.to_thread(_post, topic, text)
        else:
            await asyncio.to_thread(self._publish, topic, text)

    def _publish(self, topic_arn: str, text: str) -> None:
        # The topic's region is in its ARN: arn:aws:sns:<region>:<account>:<name>.
        parts = topic_arn.split(":")
        region = parts[3] if len(parts) > 3 and parts[3] else self.region
        with self._lock:
            client = self._sns.get(region)
            if client is None:
                import boto3

                client = boto3.session.Session().client(
                    "sns", endpoint_url=self.sns_endpoint_url, region_name=region
                )
                self._sns[region] = client
        client.publish(TopicArn=topic_arn, Message=text)


def _post(url: str, text: str) -> None:
    request = urllib.request.Request(
        url, data=text.encode(), method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=_WEBHOOK_TIMEOUT_S) as resp:
        if resp.status >= 300:
            raise RuntimeError(f"webhook answered {resp.status}")


def to_json(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))
