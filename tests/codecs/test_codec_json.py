"""application/json and application/jsonlines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelhost.codecs import json as json_codec
from modelhost.codecs import jsonlines
from modelhost.errors import DecodeError


@pytest.mark.parametrize(
    "doc",
    [
        [1, 2, 3],
        [[1, 2, 3]],
        {"instances": [[1, 2, 3]]},
        {"instances": [{"features": [1, 2, 3]}]},
        {"features": [1, 2, 3]},
    ],
)
def test_json_shapes_decode_to_one_row(doc: object) -> None:
    arr = json_codec.decode(json.dumps(doc).encode())
    assert arr.shape == (1, 3)
    np.testing.assert_array_equal(arr, [[1, 2, 3]])


def test_json_many_rows_and_null() -> None:
    arr = json_codec.decode(b'{"instances": [[1, null], [3, 4]]}')
    assert arr.shape == (2, 2)
    assert np.isnan(arr[0, 1])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "Malformed JSON"),
        (b'{"foo": 1}', "Unsupported JSON shape"),
        (b"3", "Unsupported JSON shape"),
        (b"[[1, 2], [3]]", "row 2 has 1 values, row 1 has 2"),
        (b'[["a", "b"]]', "must be a number"),
        (b'{"instances": 5}', "instances"),
        (b"[]", "no rows"),
    ],
)
def test_json_errors(body: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        json_codec.decode(body)
    assert fragment in info.value.message
    assert info.value.status_code == 415


def test_json_encoders() -> None:
    pred = np.array([0.5, 0.25], dtype=np.float32)
    assert json.loads(json_codec.encode(pred)) == [0.5, 0.25]
    assert json.loads(json_codec.encode_scores(pred)) == {
        "predictions": [{"score": 0.5}, {"score": 0.25}]
    }
    multi = np.array([[0.1, 0.9]])
    assert json.loads(json_codec.encode_scores(multi)) == {"predictions": [{"score": [0.1, 0.9]}]}


def test_jsonlines_decode() -> None:
    arr = jsonlines.decode(b'[1, 2]\n{"features": [3, 4]}\n\n')
    np.testing.assert_array_equal(arr, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"[1, 2]\n[oops", "line 2"),
        (b'{"x": 1}', "features"),
        (b"[1, 2]\n[1]", "row 2 has 1 values"),
        (b"\n", "no rows"),
    ],
)
def test_jsonlines_errors(body: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        jsonlines.decode(body)
    assert fragment in info.value.message


def test_jsonlines_encoders() -> None:
    pred = np.array([0.5, 0.25])
    assert jsonlines.encode(pred) == b"0.5\n0.25"
    assert jsonlines.encode_scores(pred) == b'{"score": 0.5}\n{"score": 0.25}'
    assert jsonlines.encode(np.array([[1, 2]]), trailing_newline=True) == b"[1, 2]\n"
