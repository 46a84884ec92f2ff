"""V2 tensors ⇄ container bodies, without processes."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from modelhost.errors import ValidationError
from modelhost.gateway import v2_tensors as v2
from modelhost.gateway.v2_api import parse_model_path


def _request(inputs: list[dict[str, object]], **extra: object) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def test_json_tensor_becomes_csv_rows() -> None:
    body = _request([{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4.5]}])
    request = v2.parse_request(body, None)
    assert v2.to_container(request) == ("text/csv", b"1.0,2.0\n3.0,4.5")
    assert v2.rows_of(request) == 2


def test_binary_inputs_fp32_int64_and_bytes() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([7, -8], dtype=np.int64)
    words = [b"hi", b""]
    c = b"".join(struct.pack("<I", len(w)) + w for w in words)
    inputs = [
        {"name": "a", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}},
        {"name": "b", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": 16}},
        {
            "name": "c",
            "shape": [2],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": len(c)},
        },
    ]
    header = _request(inputs)
    request = v2.parse_request(header + a.tobytes() + b.tobytes() + c, len(header))
    assert np.array_equal(request.inputs[0].array, a)
    assert np.array_equal(request.inputs[1].array, b)
    assert list(request.inputs[2].array) == words
    # Several inputs: one JSON object by name.
    ctype, body = v2.to_container(request)
    assert ctype == "application/json"
    assert json.loads(body) == {"a": a.tolist(), "b": [7, -8], "c": ["hi", ""]}


def test_content_type_parameter_and_npy() -> None:
    body = _request(
        [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}],
        parameters={"content_type": "application/x-npy"},
    )
    ctype, payload = v2.to_container(v2.parse_request(body, None))
    assert ctype == "application/x-npy"
    assert np.array_equal(np.load(io.BytesIO(payload)), [[1.0, 2.0]])


@pytest.mark.parametrize(
    ("body", "header_length", "problem"),
    [
        (b"[1]", None, "JSON object"),
        (b'{"inputs": []}', None, "non-empty"),
        (_request([{"name": "x", "shape": [3], "datatype": "FP32", "data": [1]}]), None, "shape"),
        (_request([{"name": "x", "shape": [1], "datatype": "F32", "data": [1]}]), None, "datatype"),
        (_request([{"name": "x", "shape": [1], "datatype": "FP32", "data": ["a"]}]), None, "FP32"),
        (b"{}", 99, "Inference-Header-Content-Length"),
    ],
)
def test_bad_requests_name_the_problem(
    body: bytes, header_length: int | None, problem: str
) -> None:
    with pytest.raises(ValidationError) as info:
        v2.parse_request(body, header_length)
    assert problem in info.value.message


def test_answers_become_tensors() -> None:
    assert np.array_equal(v2.from_container("text/csv", b"0.5\n0.25", 2), [0.5, 0.25])
    assert np.array_equal(v2.from_container("text/csv", b"0.5,0.25", 2), [0.5, 0.25])
    scores = json.dumps({"predictions": [{"score": 0.1}, {"score": 0.2}]}).encode()
    assert np.array_equal(v2.from_container("application/json", scores, 2), [0.1, 0.2])
    assert v2.from_container("application/json", b"[[1, 2]]", 1).dtype == np.int64
    text = v2.from_container("text/plain", b"hello", 1)
    assert text.dtype == np.object_ and list(text) == [b"hello"]


def test_binary_response_round_trip() -> None:
    request = v2.parse_request(
        _request(
            [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
            outputs=[{"name": "p", "parameters": {"binary_data": True}}],
            id="7",
        ),
        None,
    )
    array = np.array([0.5, 0.75])
    body, header_length = v2.encode_response("m", "A", request, array)
    assert header_length is not None
    doc = json.loads(body[:header_length])
    assert doc["id"] == "7" and doc["model_version"] == "A"
    assert doc["outputs"][0]["name"] == "p" and doc["outputs"][0]["datatype"] == "FP64"
    assert np.array_equal(np.frombuffer(body[header_length:], "<f8"), array)


def test_model_paths() -> None:
    p = parse_model_path("POST", "/v2/models/ep/CA.tar.gz/versions/B/infer")
    assert p is not None and (p.endpoint, p.target, p.version, p.verb) == (
        "ep",
        "CA.tar.gz",
        "B",
        "infer",
    )
    p = parse_model_path("GET", "/v2/models/ep%2Fdir%2FCA.tar.gz/ready")
    assert p is not None and (p.endpoint, p.target, p.verb) == ("ep", "dir/CA.tar.gz", "ready")
    p = parse_model_path("GET", "/v2/models/ep")
    assert p is not None and (p.endpoint, p.target, p.version, p.verb) == ("ep", None, None, "")
    assert parse_model_path("POST", "/v2/models/ep") is None
    assert parse_model_path("GET", "/v2/models/") is None
