"""Pure parts of compilation: exactness, choice, request rules, GPUs, edge helpers."""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from modelhost.compile import edge_serve, native_c
from modelhost.compile.choose import exactness, fastest, median_call_us
from modelhost.compile.edge_capture import EdgeCaptures
from modelhost.compile.request import check_request, input_shape, output_url, target_name
from modelhost.compile.sources import CompileError
from modelhost.control.validation import validate_input
from modelhost.errors import ValidationException
from modelhost.fleet.images import builtin_runtime_for_image
from modelhost.resources import gpus


def test_exactness_rules() -> None:
    ref = np.array([[0.5], [np.nan], [100.0]])
    assert exactness(ref, ref + 5e-7).exact
    off = exactness(ref, ref + np.array([[0.0], [0.0], [2e-6]]))
    assert not off.exact and "sample row 2" in (off.reason or "")
    assert not exactness(ref, np.nan_to_num(ref)).exact  # NaN must stay NaN
    assert "shape" in (exactness(ref, ref.reshape(1, 3)).reason or "")


def test_fastest_and_median_with_a_fake_clock() -> None:
    assert fastest({"c": 3.0, "onnx": 5.0}) == "c"
    assert fastest({"c": 5.0, "onnx": 5.0}) == "c"  # ties keep the first
    ticks = itertools.count(0, 1000)  # every clock read advances 1 µs
    assert median_call_us(lambda: None, lambda: next(ticks), 9, 10**9) == 1.0
    with pytest.raises(ValueError):
        fastest({})


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ('{"data": [1, 69]}', [1, 69]),
        ('{"input": [[8, 69]]}', [8, 69]),
        ("[1, 5]", [1, 5]),
        (None, None),
    ],
)
def test_data_input_config_shapes(text: str | None, shape: list[int] | None) -> None:
    assert input_shape(text) == shape


@pytest.mark.parametrize("text", ["{nope", '{"data": []}', '{"data": [1, -2]}', '"x"'])
def test_bad_data_input_config_is_a_validation_error(text: str) -> None:
    with pytest.raises(ValidationException, match="DataInputConfig"):
        input_shape(text)


def test_request_rules_and_output_names() -> None:
    base = {
        "CompilationJobName": "j",
        "InputConfig": {"S3Uri": "s3://b/m/model.tar.gz", "Framework": "XGBOOST"},
        "OutputConfig": {"S3OutputLocation": "s3://b/out/"},
    }
    with pytest.raises(ValidationException, match="TargetDevice"):
        check_request(base)
    both = {
        **base,
        "OutputConfig": {
            **base["OutputConfig"],
            "TargetDevice": "ml_c5",
            "TargetPlatform": {"Os": "LINUX", "Arch": "ARM64"},
        },
    }
    with pytest.raises(ValidationException, match="not both"):
        check_request(both)
    out = {"S3OutputLocation": "s3://b/out/", "TargetDevice": "ml_m5"}
    assert output_url("s3://b/m/model.tar.gz", out) == "s3://b/out/model-ml_m5.tar.gz"
    assert target_name({"TargetPlatform": {"Os": "LINUX", "Arch": "ARM64"}}) == "linux_arm64"


def test_neo_images_select_the_compiled_runtime() -> None:
    for image in (
        "785573368785.dkr.ecr.us-east-1.amazonaws.com/xgboost-neo:latest",
        "sklearn-neo",
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/sagemaker-neo-pytorch:1.6",
    ):
        assert builtin_runtime_for_image(image) == "compiled", image
    assert builtin_runtime_for_image("sagemaker-xgboost:1.7-1") == "xgboost"
    assert builtin_runtime_for_image("my-neon-server") is None


def test_accelerator_type_names_the_alternatives() -> None:
    params = {
        "EndpointConfigName": "c",
        "ProductionVariants": [
            {
                "VariantName": "v",
                "ModelName": "m",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "AcceleratorType": "ml.eia2.medium",
            }
        ],
    }
    with pytest.raises(ValidationException, match="Elastic Inference is retired") as info:
        validate_input("CreateEndpointConfig", params)
    assert "ml.g4dn.xlarge" in str(info.value) and "CreateCompilationJob" in str(info.value)


def test_gpu_types_pin_round_robin() -> None:
    assert gpus.gpus_per_instance("ml.g4dn.xlarge") == 1
    assert gpus.gpus_per_instance("ml.g5.12xlarge") == 4
    assert gpus.gpus_per_instance("ml.m5.large") == 0
    machine = ["0", "1", "2", "3"]
    assert [gpus.assign("ml.g5.xlarge", i, machine) for i in range(5)] == ["0", "1", "2", "3", "0"]
    assert gpus.assign("ml.g5.12xlarge", 1, machine) == "0,1,2,3"
    assert gpus.assign("ml.g4dn.xlarge", 0, []) is None  # no GPU here: the CPU
    assert gpus.assign("ml.c5.xlarge", 0, machine) is None
    assert gpus.machine_gpus({}, ["nvidia1", "nvidia0", "nvidiactl", "null"]) == ["0", "1"]
    assert gpus.machine_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}, ["nvidia0"]) == ["2", "3"]
    cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert (
        gpus.onnx_providers(gpus.use_cuda({"CUDA_VISIBLE_DEVICES": "1"}), cuda)[0]
        == "CUDAExecutionProvider"
    )
    assert gpus.onnx_providers(gpus.use_cuda({}), cuda) == ["CPUExecutionProvider"]
    assert gpus.onnx_providers(True, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_no_c_compiler_is_a_clear_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(CompileError, match="No C compiler found"):
        native_c.c_compiler()


def test_base_scores_move_before_the_trees() -> None:
    code = (
        "void predict(union Entry* data, int pred_margin, float* result) {\n"
        "  result[0] += (float)(1.5);\n"
        "  // Apply base_scores\n"
        "  result[0] += (float)(0.25);\n"
        "  \n}\n"
    )
    moved = native_c._base_scores_first(code)
    assert moved.index("0.25") < moved.index("1.5")
    assert "Apply base_scores" not in moved


def test_edge_request_parsing_and_answers() -> None:
    assert edge_serve.parse_rows(b"1,,3\n4,5,6\n", "text/csv")[0][1] != 1.0
    assert edge_serve.parse_rows(b"[1, null, 3]", "application/json")[0][2] == 3.0
    assert len(edge_serve.parse_rows(b'{"instances": [[1, 2], [3, 4]]}', "application/json")) == 2
    body, media = edge_serve.encode([0.5, 0.25], "application/json", False)
    assert json.loads(body) == {"predictions": [{"score": 0.5}, {"score": 0.25}]}
    assert media == "application/json"
    assert edge_serve.encode([[0.5, 0.5]], "text/csv", False)[0] == b"0.5,0.5\n"
    assert edge_serve.encode(["a", "b"], "application/json", True)[0] == b'["a", "b"]'


def test_edge_sigv4_passes_the_gateway_verifier() -> None:
    from modelhost.gateway.auth import sigv4

    url = "http://127.0.0.1:8080/api/edge-captures/dev1?file=1-ab.jsonl"
    body = b'{"captureData": {}}\n'
    now = datetime.datetime(2026, 12, 6, 10, 0, 0, tzinfo=datetime.UTC)
    signed = edge_serve.sigv4(url, body, ("AKID", "SECRET"), "us-east-1", now=now)
    headers = [("host", "127.0.0.1:8080"), *signed.items()]
    request = sigv4.SignedRequest("POST", "/api/edge-captures/dev1", "file=1-ab.jsonl", headers)
    cred = sigv4.parse(request)
    assert cred.access_key_id == "AKID"

    def key(c: sigv4.Credential) -> bytes:
        return sigv4.signing_key("SECRET", c.date, c.region, c.service)

    sigv4.verify(request, cred, hashlib.sha256(body).hexdigest(), key)
    with pytest.raises(Exception, match="signature"):
        sigv4.verify(request, cred, hashlib.sha256(b"other").hexdigest(), key)


def test_edge_capture_store(tmp_path: Path) -> None:
    captures = EdgeCaptures(tmp_path)
    line = json.dumps({"captureData": {"endpointInput": {"data": "1,2"}}})
    name = "1765015200000-ab12cd34.jsonl"
    assert captures.put("dev-1", name, (line + "\n" + line + "\n").encode()) == 2
    assert captures.put("dev-1", name, (line + "\n" + line + "\n").encode()) == 2  # a retry
    listed = captures.list("dev-1")
    assert listed["Records"] == 2 and listed["Files"][0]["Path"].startswith("2025/12/06/")
    with pytest.raises(ValidationException, match="not a data-capture record"):
        captures.put("dev-1", name, b'{"x": 1}\n')
    with pytest.raises(ValidationException, match="Capture file name"):
        captures.put("dev-1", "../x.jsonl", line.encode())
