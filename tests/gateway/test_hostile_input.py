"""The hostile-input table (docs/security.md): each input with its exact answer, while a
running endpoint keeps answering correctly between every two rows."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV, ChurnModel, deploy, unique

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
Result = tuple[int | str, str]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("allowed-data")


@pytest.fixture(scope="module")
def hostile(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    """A server that only takes model data from `data_dir` and s3://models/."""
    env = {
        **FAST_ENV,
        "MODELHOST_ALLOWED_DATA_PREFIXES": json.dumps([str(data_dir), "s3://models/"]),
    }
    with ModelhostServer(tmp_path_factory.mktemp("hostile-home"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def clients(hostile: ModelhostServer) -> tuple[Any, Any]:
    return hostile.clients(retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def live(clients: tuple[Any, Any], churn_model: ChurnModel, data_dir: Path) -> str:
    artifact = data_dir / "churn.tar.gz"
    artifact.write_bytes(churn_model.artifact.read_bytes())
    name = unique("live")
    deploy(clients[0], name, str(artifact))
    return name


def _status(call: Callable[[], Any]) -> Result:
    try:
        call()
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]
    return 200, ""


def _raw(
    srv: ModelhostServer, method: str, path: str, headers: dict[str, str], body: Any
) -> Result:
    """A request over a plain socket (for bodies and headers boto3 will not send). The
    server may answer and close before the body is sent; the answer is read regardless."""
    if isinstance(body, bytes) and not any(k.lower() == "content-length" for k in headers):
        headers = {**headers, "Content-Length": str(len(body))}
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() != "host")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        try:
            sock.sendall(head.encode("latin-1") + b"\r\n")
            if isinstance(body, bytes):
                sock.sendall(body)
            elif body is not None:  # an iterator: chunked transfer encoding
                for chunk in body:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early; read what it said
        data = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while b"\r\n\r\n" not in data or not _complete(data):
                more = sock.recv(65536)
                if not more:
                    break
                data += more
    status = int(data.split(b" ", 2)[1])
    payload = data.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1 ", 1)[0]
    code = json.loads(payload).get("__type", "") if payload.startswith(b"{") else ""
    return status, code


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _signed_headers(
    srv: ModelhostServer, method: str, path: str, body: bytes, extra: dict[str, str]
) -> dict[str, str]:
    return dict(srv.signed(method, path, body, extra).header_items())


def _tar(path: Path, info: tarfile.TarInfo, data: bytes | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _deploy_result(sm: Any, artifact: str) -> Result:
    """CreateModel's answer, or the endpoint's final status and the gist of its reason."""
    name = unique("hostile")
    try:
        deploy(sm, name, artifact, wait=False)
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]
    with contextlib.suppress(Exception):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
    desc = sm.describe_endpoint(EndpointName=name)
    sm.delete_endpoint(EndpointName=name)
    return desc["EndpointStatus"], desc.get("FailureReason", "")


def _cases(
    srv: ModelhostServer, sm: Any, rt: Any, live: str, data_dir: Path
) -> dict[str, Callable[[], Result]]:
    def oversized_runtime() -> Result:
        return _status(
            lambda: rt.invoke_endpoint(
                EndpointName=live, ContentType="text/csv", Body=bytes(6 * MIB + 1)
            )
        )

    def oversized_control() -> Result:
        tags = [{"Key": f"k{i}", "Value": "v" * 256} for i in range(50)]
        env = {f"K{i}": "x" * 1024 for i in range(1100)}
        return _status(
            lambda: sm.create_model(
                ModelName="big", PrimaryContainer={"Environment": env}, Tags=tags
            )
        )

    def declared_huge_length() -> Result:
        # Refused from the header alone: the server never waits for a body that is not sent.
        headers = _signed_headers(srv, "POST", "/", b"{}", {"X-Amz-Target": "SageMaker.ListModels"})
        headers["Content-Length"] = str(10**12)
        return _raw(srv, "POST", "/", headers, None)

    def chunked_over_limit() -> Result:
        path = f"/endpoints/{live}/invocations"
        headers = _signed_headers(
            srv,
            "POST",
            path,
            b"",
            {"Content-Type": "text/csv", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
        )
        headers.pop("Content-Length", None)
        headers["Transfer-Encoding"] = "chunked"
        chunks = (b"1," * (MIB // 2) for _ in range(8))  # 8 MiB, no Content-Length
        return _raw(srv, "POST", path, headers, chunks)

    def huge_header() -> Result:
        return _status(
            lambda: rt.invoke_endpoint(
                EndpointName=live, ContentType="text/csv", Body=b"1", CustomAttributes="a" * 20_000
            )
        )

    def endless_header() -> Result:
        # Never finished: refused while it arrives, before the parser buffers it all.
        return _raw(srv, "GET", "/api/alarms", {"X-Big": "a" * (4 * MIB)}, None)

    def many_headers() -> Result:
        extra = {f"X-Junk-{i}": "1" for i in range(150)}
        headers = _signed_headers(srv, "GET", "/api/alarms", b"", {})
        return _raw(srv, "GET", "/api/alarms", {**headers, **extra}, None)

    def deep_json() -> Result:
        body = (
            b'{"ModelName": "m", "PrimaryContainer": ' + b'{"a": ' * 200 + b"1" + b"}" * 200 + b"}"
        )
        headers = _signed_headers(
            srv,
            "POST",
            "/",
            body,
            {"X-Amz-Target": "SageMaker.CreateModel", "Content-Type": "application/x-amz-json-1.1"},
        )
        return _raw(srv, "POST", "/", headers, body)

    def deep_json_native() -> Result:
        body = b"[" * 5000 + b"]" * 5000
        headers = _signed_headers(
            srv, "PUT", "/api/alarms/x", body, {"Content-Type": "application/json"}
        )
        return _raw(srv, "PUT", "/api/alarms/x", headers, body)

    def not_json() -> Result:
        body = b"\xff\xfe{not json"
        headers = _signed_headers(srv, "POST", "/", body, {"X-Amz-Target": "SageMaker.ListModels"})
        return _raw(srv, "POST", "/", headers, body)

    def slip() -> Result:
        info = tarfile.TarInfo("../../evil.txt")
        info.size = 4
        return _deploy_result(sm, str(_tar(data_dir / "slip.tar.gz", info, b"evil")))

    def symlink() -> Result:
        info = tarfile.TarInfo("xgboost-model")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        return _deploy_result(sm, str(_tar(data_dir / "symlink.tar.gz", info)))

    def device() -> Result:
        info = tarfile.TarInfo("dev-null")
        info.type = tarfile.CHRTYPE
        return _deploy_result(sm, str(_tar(data_dir / "device.tar.gz", info)))

    def zip_bomb() -> Result:
        info = tarfile.TarInfo("xgboost-model")
        info.size = 64 * MIB
        return _deploy_result(sm, str(_tar(data_dir / "bomb.tar.gz", info, bytes(64 * MIB))))

    return {
        "runtime body over 6 MiB": oversized_runtime,
        "control body over 1 MiB": oversized_control,
        "Content-Length: 10^12, no body sent": declared_huge_length,
        "chunked runtime body over 6 MiB (no Content-Length)": chunked_over_limit,
        "20 KB header": huge_header,
        "150 header fields": many_headers,
        "4 MiB header value": endless_header,
        "JSON nested 200 deep (control plane)": deep_json,
        "JSON nested 5000 deep (native API)": deep_json_native,
        "body that is not JSON": not_json,
        "endpoint name with spaces and '!'": lambda: _status(
            lambda: sm.create_endpoint(EndpointName="bad name!", EndpointConfigName="x")
        ),
        "endpoint name of 1000 characters": lambda: _status(
            lambda: sm.describe_endpoint(EndpointName="a" * 1000)
        ),
        "runtime endpoint name '../../etc/passwd'": lambda: _status(
            lambda: rt.invoke_endpoint(EndpointName="../../etc/passwd", Body=b"1")
        ),
        "access key pattern 'a;rm -rf /'": lambda: _raw_key(srv, "a;rm -rf /"),
        "tar-slip member '../../evil.txt'": slip,
        "symlink member to /etc/passwd": symlink,
        "character device member": device,
        "zip bomb (64 MiB of zeros, ~1000:1)": zip_bomb,
        "TargetModel '../other/model.tar.gz'": lambda: _status(
            lambda: rt.invoke_endpoint(
                EndpointName=live, Body=b"1", TargetModel="../other/model.tar.gz"
            )
        ),
        "TargetModel 's3://other-bucket/m.tar.gz'": lambda: _status(
            lambda: rt.invoke_endpoint(
                EndpointName=live, Body=b"1", TargetModel="s3://other-bucket/m.tar.gz"
            )
        ),
        "ModelDataUrl 's3://other-bucket/model.tar.gz'": lambda: _deploy_result(
            sm, "s3://other-bucket/model.tar.gz"
        ),
        "ModelDataUrl 's3://models-evil/model.tar.gz'": lambda: _deploy_result(
            sm, "s3://models-evil/model.tar.gz"
        ),
        "ModelDataUrl 's3://models/../secrets/m.tar.gz'": lambda: _deploy_result(
            sm, "s3://models/../secrets/m.tar.gz"
        ),
        "ModelDataUrl = the server's key directory": lambda: _deploy_result(
            sm, str(srv.home / "auth")
        ),
    }


def _raw_key(srv: ModelhostServer, pattern: str) -> Result:
    body = json.dumps({"Role": "invoker", "Endpoints": pattern}).encode()
    headers = _signed_headers(srv, "POST", "/api/keys", body, {"Content-Type": "application/json"})
    return _raw(srv, "POST", "/api/keys", headers, body)


# name → (expected status or EndpointStatus, expected error code or FailureReason fragment)
EXPECTED: dict[str, Result] = {
    "runtime body over 6 MiB": (413, "ValidationError"),
    "control body over 1 MiB": (413, "ValidationError"),
    "Content-Length: 10^12, no body sent": (413, "ValidationError"),
    "chunked runtime body over 6 MiB (no Content-Length)": (413, "ValidationError"),
    "20 KB header": (431, "RequestHeaderFieldsTooLarge"),
    "150 header fields": (431, "RequestHeaderFieldsTooLarge"),
    "4 MiB header value": (431, "RequestHeaderFieldsTooLarge"),
    "JSON nested 200 deep (control plane)": (400, "ValidationException"),
    "JSON nested 5000 deep (native API)": (400, "ValidationException"),
    "body that is not JSON": (400, "SerializationException"),
    "endpoint name with spaces and '!'": (400, "ValidationException"),
    "endpoint name of 1000 characters": (400, "ValidationException"),
    "runtime endpoint name '../../etc/passwd'": (400, "ValidationError"),
    "access key pattern 'a;rm -rf /'": (400, "ValidationException"),
    "tar-slip member '../../evil.txt'": ("Failed", "outside the model directory"),
    "symlink member to /etc/passwd": ("Failed", "links to an absolute path"),
    "character device member": ("Failed", "is a device or FIFO"),
    "zip bomb (64 MiB of zeros, ~1000:1)": ("Failed", "decompression bomb"),
    "TargetModel '../other/model.tar.gz'": (400, "ValidationError"),
    "TargetModel 's3://other-bucket/m.tar.gz'": (400, "ValidationError"),
    "ModelDataUrl 's3://other-bucket/model.tar.gz'": (400, "ValidationException"),
    "ModelDataUrl 's3://models-evil/model.tar.gz'": (400, "ValidationException"),
    "ModelDataUrl 's3://models/../secrets/m.tar.gz'": (400, "ValidationException"),
    "ModelDataUrl = the server's key directory": (400, "ValidationException"),
}


def _still_serving(rt: Any, live: str, churn_model: ChurnModel) -> None:
    X = churn_model.data.X[:3]
    for row, want in zip(csv_rows(X), churn_model.expected(X), strict=True):
        got = float(
            rt.invoke_endpoint(EndpointName=live, ContentType="text/csv", Body=row)["Body"].read()
        )
        assert abs(got - float(want)) <= 1e-6


def test_hostile_input_table(
    hostile: ModelhostServer,
    clients: tuple[Any, Any],
    live: str,
    churn_model: ChurnModel,
    data_dir: Path,
) -> None:
    sm, rt = clients
    cases = _cases(hostile, sm, rt, live, data_dir)
    assert set(cases) == set(EXPECTED)
    results: dict[str, Result] = {}
    for name, case in cases.items():
        results[name] = case()
        _still_serving(rt, live, churn_model)
        assert hostile.alive(), name
    print("\n| input | answer |\n|---|---|")
    for name, (status, code) in results.items():
        print(f"| {name} | {status} {code} |")
    for name, (status, fragment) in EXPECTED.items():
        got_status, got_code = results[name]
        assert got_status == status, (name, results[name])
        assert fragment in got_code, (name, results[name])
