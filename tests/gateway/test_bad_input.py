"""One test per bad input, each asserting SageMaker's status code and error code."""

from __future__ import annotations

import io
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.support import XGBOOST_IMAGE, ChurnModel, deploy, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def endpoint(clients: tuple[Any, Any], churn_model: ChurnModel) -> str:
    name = unique("bad-input")
    deploy(clients[0], name, str(churn_model.artifact))
    return name


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, dict[str, Any]]:
    resp = exc.value.response
    return resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]["Code"], resp


def test_malformed_csv_is_model_error_415(rt: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body="1,abc,3\n")
    status, code, resp = _error(exc)
    assert (status, code) == (424, "ModelError")
    assert resp["OriginalStatusCode"] == 415
    assert "abc" in resp["OriginalMessage"]


def test_wrong_feature_count_is_model_error_400(rt: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body="1,2,3")
    status, code, resp = _error(exc)
    assert (status, code) == (424, "ModelError")
    assert resp["OriginalStatusCode"] == 400
    assert "69" in resp["OriginalMessage"] and "3" in resp["OriginalMessage"]


def test_empty_body_is_validation_error(rt: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=b"")
    assert _error(exc)[:2] == (400, "ValidationError")


def test_oversized_body_is_413(rt: Any, endpoint: str) -> None:
    body = b"1," * (3 * 1024 * 1024 + 10)  # just over 6 MiB
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=body)
    status, code, resp = _error(exc)
    assert (status, code) == (413, "ValidationError")
    assert "6291456" in resp["Error"]["Message"]


def test_unknown_endpoint_is_validation_error(rt: Any) -> None:
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="text/csv", Body="1")
    status, code, resp = _error(exc)
    assert (status, code) == (400, "ValidationError")
    assert "no-such-endpoint" in resp["Error"]["Message"]


def test_bad_runtime_endpoint_name_is_validation_error(rt: Any) -> None:
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName="bad_name!", ContentType="text/csv", Body="1")
    status, code, resp = _error(exc)
    assert (status, code) == (400, "ValidationError")
    assert "regular expression pattern" in resp["Error"]["Message"]


@pytest.mark.parametrize("bad", ["under_score", "-leading", "trailing-", "a" * 64, "dot.name"])
def test_bad_control_plane_names_are_validation_exception(sm: Any, bad: str) -> None:
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint(EndpointName=bad, EndpointConfigName="cfg")
    status, code, resp = _error(exc)
    assert (status, code) == (400, "ValidationException")
    assert "endpointName" in resp["Error"]["Message"]


def test_bad_enum_and_range_are_validation_exception(sm: Any) -> None:
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint_config(
            EndpointConfigName="c1",
            ProductionVariants=[
                {
                    "VariantName": "v",
                    "ModelName": "m",
                    "InitialInstanceCount": 1,
                    "VolumeSizeInGB": 1000,
                    "InstanceType": "ml.bogus",
                }
            ],
        )
    status, code, resp = _error(exc)
    assert (status, code) == (400, "ValidationException")
    msg = resp["Error"]["Message"]
    assert "2 validation errors detected" in msg
    assert "productionVariants.1.member.volumeSizeInGB" in msg
    assert "less than or equal to 512" in msg and "instanceType" in msg
    with pytest.raises(ClientError) as exc:
        sm.list_endpoints(StatusEquals="Bogus")
    assert _error(exc)[1] == "ValidationException"


def test_unsupported_content_type_is_model_error_415(rt: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName=endpoint, ContentType="image/png", Body=b"\x89PNG")
    status, code, resp = _error(exc)
    assert (status, code) == (424, "ModelError")
    assert resp["OriginalStatusCode"] == 415
    assert "text/csv" in resp["OriginalMessage"]


def test_unsupported_accept_is_model_error_406(
    rt: Any, endpoint: str, churn_model: ChurnModel
) -> None:
    row = csv_rows(churn_model.data.X[:1])[0]
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Accept="image/png", Body=row
        )
    status, code, resp = _error(exc)
    assert (status, code) == (424, "ModelError")
    assert resp["OriginalStatusCode"] == 406


def test_unknown_target_variant_is_validation_error(rt: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body="1", TargetVariant="nope"
        )
    assert _error(exc)[:2] == (400, "ValidationError")


def test_unknown_operation_and_bad_json(server: ModelhostServer) -> None:
    def post(target: str, body: bytes) -> tuple[int, bytes]:
        req = server.signed(
            "POST",
            "/",
            body,
            {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    # Not in the policy table: denied before the API sees it (default deny), even to admins.
    status, body = post("SageMaker.CreateTrainingJob", b"{}")
    assert status == 403 and b"AccessDeniedException" in body
    status, body = post("SageMaker.ListEndpoints", b"{not json")
    assert status == 400 and b"SerializationException" in body


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _wait_failed(sm: Any, name: str) -> str:
    with pytest.raises(WaiterError, match=r"Failed|failure"):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
        )
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "Failed"
    return str(desc["FailureReason"])


def test_corrupt_artifact_fails_endpoint_with_reason(sm: Any, tmp_path: Path) -> None:
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage-not-a-gzip-stream")
    name = unique("corrupt")
    deploy(sm, name, str(bad), wait=False)
    reason = _wait_failed(sm, name)
    assert "model.tar.gz" in reason and "archive" in reason


def test_tar_slip_artifact_fails_endpoint_with_reason(sm: Any, tmp_path: Path) -> None:
    info = tarfile.TarInfo("../../evil.txt")
    info.size = 4
    archive = _tar(tmp_path / "slip.tar.gz", [(info, b"evil")])
    name = unique("slip")
    deploy(sm, name, str(archive), wait=False)
    reason = _wait_failed(sm, name)
    assert "evil.txt" in reason and "outside" in reason
    # Only DeleteEndpoint is allowed on a Failed endpoint.
    with pytest.raises(ClientError) as exc:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=name)
    assert _error(exc)[1] == "ValidationException"
    sm.delete_endpoint(EndpointName=name)


def test_model_without_loadable_file_fails_with_reason(sm: Any, tmp_path: Path) -> None:
    model_dir = tmp_path / "empty-model"
    model_dir.mkdir()
    (model_dir / "README.txt").write_text("no model here")
    name = unique("nomodel")
    deploy(sm, name, str(model_dir), image=XGBOOST_IMAGE, wait=False)
    reason = _wait_failed(sm, name)
    assert "README.txt" in reason or "xgboost" in reason.lower()


def test_unknown_image_fails_with_reason(sm: Any, churn_model: ChurnModel) -> None:
    name = unique("img")
    deploy(
        sm,
        name,
        str(churn_model.artifact),
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own:1",
        wait=False,
    )
    reason = _wait_failed(sm, name)
    assert "my-own" in reason
