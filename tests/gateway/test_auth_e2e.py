"""Authentication end to end: real boto3 clients with right, wrong, expired and missing
credentials on every API, roles against a live server, the CLI's key commands, presigned
and unsigned-payload requests, auth-off only on loopback, and TLS."""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV, ChurnModel, deploy, unique

pytestmark = pytest.mark.integration

NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def _client(service: str, server: ModelhostServer, creds: tuple[str, str] | None) -> Any:
    kwargs: dict[str, Any] = {"endpoint_url": server.url, "region_name": "us-east-1"}
    if creds is None:
        kwargs["config"] = NO_RETRY.merge(Config(signature_version=UNSIGNED))
    else:
        kwargs.update(aws_access_key_id=creds[0], aws_secret_access_key=creds[1], config=NO_RETRY)
    return boto3.client(service, **kwargs)


def _error(call: Callable[[], Any]) -> tuple[int, str, str]:
    try:
        call()
    except ClientError as exc:
        err = exc.response["Error"]
        return exc.response["ResponseMetadata"]["HTTPStatusCode"], err["Code"], err["Message"]
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        return exc.code, body.get("__type", ""), body.get("Message", "")
    return 200, "", ""


@pytest.fixture(scope="module")
def endpoint(server: ModelhostServer, sm: Any, churn_model: ChurnModel) -> str:
    name = unique("auth")
    deploy(sm, name, f"file://{churn_model.artifact}")
    return name


@pytest.fixture(scope="module")
def sm(server: ModelhostServer) -> Any:  # module-scoped twin of the conftest fixture
    return server.clients(retries={"max_attempts": 1, "mode": "standard"})[0]


def _calls(server: ModelhostServer, endpoint: str, row: str) -> dict[str, Callable[..., Any]]:
    """One call per API, given credentials (None: unsigned)."""

    def native(creds: tuple[str, str] | None) -> Any:
        url = server.url + "/api/alarms"
        request = urllib.request.Request(url)
        if creds is not None:
            aws = AWSRequest(method="GET", url=url)
            SigV4Auth(Credentials(*creds), "sagemaker", "us-east-1").add_auth(aws)
            request = urllib.request.Request(url, headers=dict(aws.headers.items()))
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())

    return {
        "control": lambda c: _client("sagemaker", server, c).list_endpoints(),
        "runtime": lambda c: _client("sagemaker-runtime", server, c).invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body=row
        ),
        "autoscaling": lambda c: _client(
            "application-autoscaling", server, c
        ).describe_scalable_targets(ServiceNamespace="sagemaker"),
        "native": native,
    }


@pytest.fixture()
def clock_behind(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Make botocore sign with a clock `seconds` behind (the server's clock is real)."""

    def set_offset(seconds: float) -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=seconds)
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now)

    return set_offset


@pytest.mark.parametrize("api", ["control", "runtime", "autoscaling", "native"])
def test_right_wrong_expired_and_missing_credentials(
    server: ModelhostServer,
    endpoint: str,
    churn_model: ChurnModel,
    api: str,
    clock_behind: Callable[[float], None],
) -> None:
    call = _calls(server, endpoint, csv_rows(churn_model.data.X[:1])[0])[api]
    key_id, secret = server.credentials
    status, code, _ = _error(lambda: call(server.credentials))
    assert (status, code) == (200, "")
    assert _error(lambda: call((key_id, secret + "x")))[:2] == (403, "InvalidSignatureException")
    assert _error(lambda: call(("MHNOSUCHKEY0000000000", secret)))[:2] == (
        403,
        "UnrecognizedClientException",
    )
    assert _error(lambda: call(None))[:2] == (403, "MissingAuthenticationTokenException")
    clock_behind(600)
    status, code, message = _error(lambda: call(server.credentials))
    assert (status, code) == (403, "InvalidSignatureException")
    assert "Signature expired" in message


def _create_key(server: ModelhostServer, role: str, endpoints: str = "*") -> tuple[str, str]:
    out = server.call("POST", "/api/keys", {"Role": role, "Endpoints": endpoints})
    assert out["Role"] == role and out["Endpoints"] == endpoints
    return out["AccessKeyId"], out["SecretAccessKey"]


def test_roles_against_a_live_server(
    server: ModelhostServer, endpoint: str, churn_model: ChurnModel, tmp_path: Path
) -> None:
    row = csv_rows(churn_model.data.X[:1])[0]
    invoker = _create_key(server, "invoker", f"{endpoint},other-*")
    rt = _client("sagemaker-runtime", server, invoker)
    sm_invoker = _client("sagemaker", server, invoker)
    assert rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)["Body"]
    status, code, message = _error(
        lambda: rt.invoke_endpoint(EndpointName="forbidden", ContentType="text/csv", Body=row)
    )
    assert (status, code) == (403, "AccessDeniedException")
    assert "sagemaker:InvokeEndpoint" in message and "endpoint/forbidden" in message
    # Allowed by the pattern, so the runtime answers (no such endpoint) rather than the guard.
    assert _error(
        lambda: rt.invoke_endpoint(EndpointName="other-x", ContentType="text/csv", Body=row)
    )[:2] == (400, "ValidationError")
    assert _error(lambda: sm_invoker.describe_endpoint(EndpointName=endpoint))[:2] == (
        403,
        "AccessDeniedException",
    )
    assert _error(lambda: sm_invoker.list_models())[1] == "AccessDeniedException"

    deployer = _create_key(server, "deployer")
    sm_deployer = _client("sagemaker", server, deployer)
    name = unique("auth-dep")
    sm_deployer.create_model(
        ModelName=name, PrimaryContainer={"ModelDataUrl": f"file://{churn_model.artifact}"}
    )
    assert sm_deployer.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"
    sm_deployer.delete_model(ModelName=name)
    deployer_server = ModelhostServer(server.home, port=server.port)
    deployer_server.credentials = deployer
    assert _error(lambda: deployer_server.call("GET", "/api/keys"))[:2] == (
        403,
        "AccessDeniedException",
    )
    # Revoked keys stop working at once.
    server.call("DELETE", f"/api/keys/{deployer[0]}")
    assert _error(lambda: sm_deployer.list_models())[:2] == (403, "UnrecognizedClientException")
    listed = {k["AccessKeyId"]: k for k in server.call("GET", "/api/keys")["AccessKeys"]}
    assert listed[deployer[0]]["Status"] == "Revoked"
    assert "SecretAccessKey" not in listed[invoker[0]]


def test_presigned_url_and_unsigned_payload(
    server: ModelhostServer, endpoint: str, churn_model: ChurnModel
) -> None:
    creds = Credentials(*server.credentials)
    # A presigned GET (the signature rides in the query string).
    aws = AWSRequest(method="GET", url=f"{server.url}/api/endpoints/{endpoint}/events")
    SigV4QueryAuth(creds, "sagemaker", "us-east-1", expires=60).add_auth(aws)
    assert "X-Amz-Signature=" in aws.url
    with urllib.request.urlopen(aws.url, timeout=10) as resp:
        assert json.loads(resp.read())["EndpointName"] == endpoint
    tampered = aws.url.replace(endpoint, endpoint + "x")
    assert _error(lambda: urllib.request.urlopen(tampered, timeout=10))[:2] == (
        403,
        "InvalidSignatureException",
    )
    # An invocation signed with UNSIGNED-PAYLOAD is verified before its body is read.
    row = csv_rows(churn_model.data.X[:1])[0].encode()
    headers = {"Content-Type": "text/csv", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    url = f"{server.url}/endpoints/{endpoint}/invocations"
    aws = AWSRequest(method="POST", url=url, data=row, headers=headers)
    SigV4Auth(creds, "sagemaker", "us-east-1").add_auth(aws)
    request = urllib.request.Request(url, data=row, method="POST", headers=dict(aws.headers))
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert float(resp.read()) == pytest.approx(
            float(churn_model.expected(churn_model.data.X[:1])[0]), abs=1e-6
        )


def _cli(server: ModelhostServer, *args: str, home: Path | None = None) -> Any:
    env = {
        **os.environ,
        "MODELHOST_URL": server.url,
        "MODELHOST_HOME": str(home or server.home),
    }
    return subprocess.run(
        [sys.executable, "-m", "modelhost", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_keys_and_credentials(server: ModelhostServer, endpoint: str) -> None:
    out = _cli(server, "keys", "create", "--role", "invoker", "--endpoints", "churn-*")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(":", 1) for line in out.stdout.splitlines())
    key_id = lines["AccessKeyId"].strip()
    assert lines["SecretAccessKey"].strip()
    listed = _cli(server, "keys", "list")
    assert key_id in listed.stdout and "invoker" in listed.stdout
    assert lines["SecretAccessKey"].strip() not in listed.stdout
    assert _cli(server, "keys", "revoke", key_id).returncode == 0
    assert "Revoked" in _cli(server, "keys", "list").stdout

    creds = _cli(server, "credentials")
    assert creds.returncode == 0, creds.stderr
    env = dict(line.removeprefix("export ").split("=", 1) for line in creds.stdout.splitlines())
    assert env["AWS_ACCESS_KEY_ID"] == server.credentials[0]
    assert env["AWS_ENDPOINT_URL_SAGEMAKER"] == server.url
    # Unmodified boto3 code with only those environment variables.
    script = "import boto3; print(len(boto3.client('sagemaker').list_endpoints()['Endpoints']))"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    run = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and int(run.stdout) >= 1, run.stderr
    # A CLI that has no key for this server is told how to get one.
    other = _cli(server, "endpoints", home=server.home / "nowhere")
    assert other.returncode == 1 and "UnrecognizedClientException" in other.stderr
    assert "hint:" in other.stderr


def test_auth_off_only_on_loopback(tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "modelhost", "serve", "--no-auth", "--host", "0.0.0.0"],
        env={**os.environ, "MODELHOST_HOME": str(tmp_path / "h1")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "authentication off" in refused.stderr
    env = {**FAST_ENV, "MODELHOST_AUTH_ENABLED": "false"}
    with ModelhostServer(tmp_path / "h2", env=env) as srv:
        assert _client("sagemaker", srv, None).list_endpoints()["Endpoints"] == []


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    env = {**FAST_ENV, "MODELHOST_TLS_CERT_FILE": str(cert), "MODELHOST_TLS_KEY_FILE": str(key)}
    with ModelhostServer(tmp_path / "home", env=env) as srv:
        assert srv.url.startswith("https://")
        sm = boto3.client(
            "sagemaker",
            endpoint_url=srv.url,
            region_name="us-east-1",
            aws_access_key_id=srv.credentials[0],
            aws_secret_access_key=srv.credentials[1],
            verify=str(cert),
            config=NO_RETRY,
        )
        assert sm.list_endpoints()["Endpoints"] == []
        # Plain HTTP to the TLS port gets nowhere.
        with pytest.raises((urllib.error.URLError, OSError, ssl.SSLError)):
            urllib.request.urlopen(srv.url.replace("https", "http") + "/ping", timeout=5)


@pytest.fixture(autouse=True)
def _no_aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    yield
