"""Fuzz the native API against its OpenAPI description (schemathesis, bounded examples):
no 5xx, only documented status codes, bodies that match the schemas, all signed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, settings
from schemathesis import checks

from modelhost.gateway.openapi import native_openapi
from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV

pytestmark = pytest.mark.integration

# Replay deploys a temporary endpoint and reads the capture location it is given: its
# request and report are described, and tested end to end in tests/monitor, not fuzzed.
schema = schemathesis.openapi.from_dict(native_openapi()).exclude(path="/api/replay")


class SigV4RequestsAuth(requests.auth.AuthBase):
    """Sign a `requests` request the way boto3 would."""

    def __init__(self, credentials: tuple[str, str]) -> None:
        self.credentials = Credentials(*credentials)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body.encode() if isinstance(r.body, str) else (r.body or b"")
        aws = AWSRequest(method=r.method, url=r.url, data=body, headers=dict(r.headers))
        SigV4Auth(self.credentials, "sagemaker", "us-east-1").add_auth(aws)
        r.headers.update(dict(aws.headers.items()))
        return r


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    with ModelhostServer(Path(tmp_path_factory.mktemp("fuzz-home")), env=FAST_ENV) as srv:
        yield srv


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_native_api_matches_its_openapi(case: Any, fuzz_server: ModelhostServer) -> None:
    response = case.call(base_url=fuzz_server.url, auth=SigV4RequestsAuth(fuzz_server.credentials))
    case.validate_response(
        response,
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
        ],
    )
    assert fuzz_server.alive()


def test_the_description_is_served_and_public(fuzz_server: ModelhostServer) -> None:
    got = requests.get(fuzz_server.url + "/api/openapi.json", timeout=10).json()
    assert got == native_openapi()
