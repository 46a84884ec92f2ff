"""The client side: which key the CLI and the test helpers sign with, and signed calls to
modelhost's native API (boto3 signs the SageMaker APIs itself).

Resolution order: `MODELHOST_ACCESS_KEY_ID`/`MODELHOST_SECRET_ACCESS_KEY` (settings), then
the bootstrap admin key of the local home directory (readable only by its owner; in the
shared database with PostgreSQL, decrypted with the home's master key), then a
placeholder pair that only a server with authentication off accepts.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelhost.gateway.auth.key_table import bootstrap_credentials
from modelhost.settings import Settings

PLACEHOLDER = ("modelhost", "modelhost")


def resolve(home: Path | None = None, settings: Settings | None = None) -> tuple[str, str]:
    """(access key id, secret) for talking to the server whose home is `home`."""
    settings = settings or Settings()
    if settings.access_key_id and settings.secret_access_key:
        return settings.access_key_id, settings.secret_access_key
    found = bootstrap_credentials(home or settings.home, settings.database_url, settings)
    return found or PLACEHOLDER


def signed_request(
    url: str,
    method: str,
    credentials: tuple[str, str],
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    region: str = "us-east-1",
    service: str = "sagemaker",
) -> urllib.request.Request:
    """A urllib request signed with SigV4 exactly as boto3 would sign it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    aws = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers or {}))
    SigV4Auth(Credentials(*credentials), service, region).add_auth(aws)
    return urllib.request.Request(url, data=body, method=method, headers=dict(aws.headers.items()))


def call_native(
    base_url: str,
    method: str,
    path: str,
    credentials: tuple[str, str],
    body: dict[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> Any:
    """Call a native `/api/...` route; raises urllib.error.HTTPError on 4xx/5xx."""
    data = json.dumps(body).encode() if body is not None else None
    request = signed_request(
        base_url.rstrip("/") + path,
        method,
        credentials,
        data,
        {"Content-Type": "application/json"} if data is not None else None,
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        return json.loads(resp.read() or b"{}")


def signed_headers(
    url: str,
    method: str,
    credentials: tuple[str, str],
    region: str = "us-east-1",
    service: str = "sagemaker",
) -> dict[str, str]:
    """SigV4 headers for a request whose body is not signed (`UNSIGNED-PAYLOAD`), for
    clients that take extra headers but cannot sign, such as tritonclient's
    `headers=`: sign per call (valid for `auth_clock_skew_s`)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    aws = AWSRequest(method=method, url=url, headers=headers)
    SigV4Auth(Credentials(*credentials), service, region).add_auth(aws)
    return {k: v for k, v in aws.headers.items() if k.lower() != "host"}


def httpx_signer(
    credentials: tuple[str, str], region: str = "us-east-1", service: str = "sagemaker"
) -> Callable[[Any], Any]:
    """An httpx `auth=` callable that signs every request with SigV4 as boto3 would, its body
    included (httpx wraps a plain callable in its `FunctionAuth`). For clients built on
    httpx that take an `auth`, such as KServe's `InferenceRESTClient`
    (`RESTConfig(auth=httpx_signer(key))`): unlike `signed_headers`, nothing to redo per
    call. Takes bodies already in memory (`content=` bytes), as KServe's client sends."""
    from botocore.auth import SigV4Auth
    from botocore.credentials import Credentials

    signer = SigV4Auth(Credentials(*credentials), service, region)

    def sign(request: Any) -> Any:
        from botocore.awsrequest import AWSRequest

        aws = AWSRequest(method=request.method, url=str(request.url), data=request.content)
        if "content-type" in request.headers:
            aws.headers["Content-Type"] = request.headers["content-type"]
        signer.add_auth(aws)
        for name, value in aws.headers.items():
            if name.lower() != "host":  # httpx sends the URL's, which was signed
                request.headers[name] = value
        return request

    return sign
