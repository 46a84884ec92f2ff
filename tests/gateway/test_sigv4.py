"""The SigV4 verifier against botocore's own signer: property tests over paths, queries,
headers, bodies, regions and services, plus the time window and presigned URLs."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from modelhost.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
)
from modelhost.gateway.auth import sigv4

KEY_ID, SECRET = "MHTESTKEY0000000000", "s3cr3t/with+chars=="
NOW = dt.datetime(2026, 11, 21, 19, 4, 34, tzinfo=dt.UTC)


def _sign(
    method: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    region: str = "us-east-1",
    service: str = "sagemaker",
    presign_s: int | None = None,
    when: dt.datetime = NOW,
    monkeypatch: Any = None,
) -> AWSRequest:
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    creds = Credentials(KEY_ID, SECRET)
    signer: SigV4Auth = (
        SigV4QueryAuth(creds, service, region, expires=presign_s)
        if presign_s
        else SigV4Auth(creds, service, region)
    )
    import botocore.auth

    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: when.replace(tzinfo=None)
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original
    return request


def _received(request: AWSRequest) -> sigv4.SignedRequest:
    """The request as an HTTP server sees it: raw path and query, lower-case headers, and
    the Host header that urllib3 adds."""
    parts = urlsplit(request.url)
    headers = [(k.lower(), v) for k, v in request.headers.items()]
    headers.append(("host", parts.netloc))
    return sigv4.SignedRequest(request.method, parts.path or "/", parts.query, headers)


def _verify(request: AWSRequest, body: bytes, secret: str = SECRET, now: dt.datetime = NOW) -> None:
    received = _received(request)
    cred = sigv4.parse(received)
    sigv4.check_time(cred, now.timestamp(), 300)
    payload = cred.payload_hash or hashlib.sha256(body).hexdigest()
    sigv4.verify(
        received,
        cred,
        payload,
        lambda c: sigv4.signing_key(secret, c.date, c.region, c.service),
    )


segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12
)
query_part = st.text(alphabet="abcXYZ019-_.~ %+=", min_size=0, max_size=8)
header_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str], str, str]:
    segments = draw(st.lists(segment, min_size=0, max_size=4))
    # botocore percent-encodes each label of a REST path (a '/' inside a name → %2F).
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    pairs = draw(st.lists(st.tuples(query_part, query_part), max_size=3))
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    url = f"http://127.0.0.1:8080{path}" + (f"?{query}" if query else "")
    headers = {
        f"X-Amzn-SageMaker-{name}": value
        for name, value in draw(
            st.dictionaries(
                st.sampled_from(["Custom-Attributes", "Target-Model", "Inference-Id"]),
                header_value,
                max_size=3,
            )
        ).items()
    }
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(["text/csv", "application/json"]))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    body = draw(st.binary(max_size=64)) if method in ("POST", "PUT") else b""
    region = draw(st.sampled_from(["us-east-1", "eu-west-3", "local"]))
    service = draw(st.sampled_from(["sagemaker", "application-autoscaling"]))
    return method, url, body, headers, region, service


@settings(max_examples=150, deadline=None)
@given(requests())
def test_botocore_signatures_verify(req: tuple[str, str, bytes, dict[str, str], str, str]) -> None:
    method, url, body, headers, region, service = req
    _verify(_sign(method, url, body, headers, region, service), body)


@settings(max_examples=100, deadline=None)
@given(requests(), st.integers(min_value=0, max_value=3))
def test_any_change_breaks_the_signature(
    req: tuple[str, str, bytes, dict[str, str], str, str], which: int
) -> None:
    method, url, body, headers, region, service = req
    signed = _sign(method, url, body, headers, region, service)
    if which == 0:  # another body
        with pytest.raises(InvalidSignatureException):
            _verify(signed, body + b"x")
    elif which == 1:  # another secret
        with pytest.raises(InvalidSignatureException):
            _verify(signed, body, secret=SECRET + "x")
    elif which == 2:  # another path (a segment appended: a prefix can be normalized away,
        # "/x/.." is "/" like "/..")
        path, sep, query = signed.url.partition("?")
        signed.url = f"{path.rstrip('/')}/x{sep}{query}"
        with pytest.raises(InvalidSignatureException):
            _verify(signed, body)
    else:  # a signed header changed in transit
        signed.headers["X-Amz-Date"] = "20261121T190435Z"
        with pytest.raises(InvalidSignatureException):
            _verify(signed, body)


@settings(max_examples=50, deadline=None)
@given(requests())
def test_presigned_urls_verify(req: tuple[str, str, bytes, dict[str, str], str, str]) -> None:
    method, url, _, headers, region, service = req
    signed = _sign(method, url, b"", headers, region, service, presign_s=600)
    assert "X-Amz-Signature=" in signed.url
    _verify(signed, b"", now=NOW + dt.timedelta(seconds=599))
    with pytest.raises(InvalidSignatureException, match="expired"):
        _verify(signed, b"", now=NOW + dt.timedelta(seconds=601))


def test_the_capture_path_is_encoded_twice() -> None:
    """reference §5.5: `a b/c` travels as a%20b%2Fc and is canonicalised as a%2520b%252Fc."""
    assert sigv4.canonical_uri("/endpoints/a%20b%2Fc/invocations") == (
        "/endpoints/a%2520b%252Fc/invocations"
    )
    assert sigv4.canonical_uri("") == "/"
    assert sigv4.canonical_uri("/a/./b/../c//d/") == "/a/c/d/"


def test_time_window() -> None:
    body = b"{}"
    signed = _sign("POST", "http://127.0.0.1:8080/", body, {"X-Amz-Target": "SageMaker.ListModels"})
    _verify(signed, body, now=NOW + dt.timedelta(seconds=299))
    _verify(signed, body, now=NOW - dt.timedelta(seconds=299))
    with pytest.raises(InvalidSignatureException, match="Signature expired"):
        _verify(signed, body, now=NOW + dt.timedelta(seconds=301))
    with pytest.raises(InvalidSignatureException, match="not yet current"):
        _verify(signed, body, now=NOW - dt.timedelta(seconds=301))


def test_unsigned_payload_and_declared_hash() -> None:
    headers = {"X-Amz-Content-SHA256": sigv4.UNSIGNED_PAYLOAD}
    signed = _sign("POST", "http://127.0.0.1:8080/endpoints/e/invocations", b"1,2", headers)
    cred = sigv4.parse(_received(signed))
    assert cred.payload_hash == sigv4.UNSIGNED_PAYLOAD
    _verify(signed, b"anything: the body is not covered")
    # A content hash header that is not signed could be swapped: refused.
    signed = _sign("POST", "http://127.0.0.1:8080/", b"", {})
    signed.headers["X-Amz-Content-SHA256"] = sigv4.UNSIGNED_PAYLOAD
    with pytest.raises(IncompleteSignatureException):
        sigv4.parse(_received(signed))


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, MissingAuthenticationTokenException),
        ("Basic dXNlcjpwYXNz", IncompleteSignatureException),
        ("AWS4-HMAC-SHA256 Credential=x", IncompleteSignatureException),
        (
            "AWS4-HMAC-SHA256 Credential=K/20261121/us-east-1/sagemaker/aws4_request, "
            "SignedHeaders=x-amz-date, Signature=" + "0" * 64,
            IncompleteSignatureException,  # host must be signed
        ),
        (
            "AWS4-HMAC-SHA256 Credential=K/20261120/us-east-1/sagemaker/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
            InvalidSignatureException,  # scope date differs from X-Amz-Date
        ),
        (
            "AWS4-HMAC-SHA256 Credential=K/20261121/us-east-1/sagemaker, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
            IncompleteSignatureException,
        ),
    ],
)
def test_malformed_authorization(authorization: str | None, error: type[Exception]) -> None:
    headers = [("host", "127.0.0.1:8080"), ("x-amz-date", "20261121T190434Z")]
    if authorization is not None:
        headers.append(("authorization", authorization))
    with pytest.raises(error):
        sigv4.parse(sigv4.SignedRequest("POST", "/", "", headers))


def test_httpx_signer_signs_what_httpx_sends() -> None:
    """`httpx_signer` (KServe's client's `auth`): the request httpx sends verifies, its body
    included, and a different body does not."""
    httpx = pytest.importorskip("httpx")
    from modelhost.gateway.auth.client import httpx_signer

    body = b'{"inputs": []}\x00\x01binary tensor data'
    request = httpx.Request(
        "POST",
        "http://127.0.0.1:8080/v2/models/churn-mme/CA.tar.gz/infer",
        content=body,
        headers={"content-type": "application/octet-stream"},
    )
    signed = httpx_signer((KEY_ID, SECRET))(request)
    headers = [(k.lower(), v) for k, v in signed.headers.items()]
    received = sigv4.SignedRequest("POST", signed.url.raw_path.decode(), "", headers)
    cred = sigv4.parse(received)
    assert "content-type" in cred.signed_headers and cred.payload_hash is None
    sigv4.check_time(cred, time.time(), 300)

    def key(c: sigv4.Credential) -> bytes:
        return sigv4.signing_key(SECRET, c.date, c.region, c.service)

    sigv4.verify(received, cred, hashlib.sha256(body).hexdigest(), key)
    with pytest.raises(InvalidSignatureException):
        sigv4.verify(received, cred, hashlib.sha256(body + b"!").hexdigest(), key)
