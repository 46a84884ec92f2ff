"""text/csv decoding and encoding."""

from __future__ import annotations

import numpy as np
import pytest

from modelhost.codecs import csv
from modelhost.errors import DecodeError, EncodeError


def test_one_row_fast_path() -> None:
    arr = csv.decode(b"1,2.5,-3e2")
    assert arr.shape == (1, 3)
    assert arr.dtype == np.float32
    np.testing.assert_array_equal(arr, [[1, 2.5, -300]])


def test_trailing_newline_and_crlf() -> None:
    np.testing.assert_array_equal(csv.decode(b"1,2\n"), [[1, 2]])
    np.testing.assert_array_equal(csv.decode(b"1,2\r\n3,4\r\n"), [[1, 2], [3, 4]])


def test_multi_row() -> None:
    arr = csv.decode(b"1,2,3\n4,5,6\n7,8,9", np.float64)
    assert arr.dtype == np.float64
    np.testing.assert_array_equal(arr, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])


def test_empty_fields_are_nan() -> None:
    arr = csv.decode(b"1,,3")
    assert np.isnan(arr[0, 1])
    assert arr[0, 0] == 1 and arr[0, 2] == 3
    arr = csv.decode(b"1,2,\n,5, 6 ")
    assert np.isnan(arr[0, 2]) and np.isnan(arr[1, 0])
    assert arr[1, 2] == 6


def test_blank_lines_are_skipped() -> None:
    np.testing.assert_array_equal(csv.decode(b"1,2\n\n3,4\n"), [[1, 2], [3, 4]])


def test_quoted_numbers() -> None:
    np.testing.assert_array_equal(csv.decode(b'"1","2.5"'), [[1, 2.5]])


def test_ragged_rows_name_the_rule() -> None:
    with pytest.raises(DecodeError) as info:
        csv.decode(b"1,2,3\n4,5")
    assert info.value.message == "Malformed CSV: row 2 has 2 fields, row 1 has 3"
    assert info.value.status_code == 415


def test_non_number_names_row_and_field() -> None:
    with pytest.raises(DecodeError) as info:
        csv.decode(b"1,2,3,4,5\n1,2,3,4,abc")
    assert (
        info.value.message == "Malformed CSV: row 2, field 5: could not convert 'abc' to a number"
    )


def test_header_row_gets_a_hint() -> None:
    with pytest.raises(DecodeError) as info:
        csv.decode(b"a,b\n1,2")
    assert "row 1, field 1" in info.value.message
    assert "header" in info.value.message


def test_empty_body() -> None:
    with pytest.raises(DecodeError):
        csv.decode(b"  \n")


def test_encode_one_value_per_line() -> None:
    assert csv.encode(np.array([0.5, 0.25], dtype=np.float32)) == b"0.5\n0.25"
    assert csv.encode(np.array([0.5])) == b"0.5"
    assert csv.encode(np.array([0.5, 1.0]), trailing_newline=True) == b"0.5\n1.0\n"


def test_encode_multi_output_rows() -> None:
    assert csv.encode(np.array([[1.0, 2.0], [3.0, 4.0]])) == b"1.0,2.0\n3.0,4.0"


def test_encode_round_trips_float32() -> None:
    values = np.random.default_rng(0).random(100).astype(np.float32)
    back = np.array(csv.encode(values).split(b"\n"), dtype=np.float64).astype(np.float32)
    np.testing.assert_array_equal(back, values)


def test_encode_quotes_strings() -> None:
    assert csv.encode(np.array(["a,b", "c"])) == b'"a,b"\nc'


def test_encode_3d_is_an_error() -> None:
    with pytest.raises(EncodeError):
        csv.encode(np.zeros((2, 2, 2)))


def test_large_bodies_parse_in_bulk_with_the_same_values_and_errors() -> None:
    """Batch mini-batches (≥ BULK_MIN_BYTES) go through pyarrow; values and error
    messages must be those of the row path."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 12)).astype(np.float32)
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in X).encode() + b"\n"
    assert len(body) >= csv.BULK_MIN_BYTES
    got = csv.decode(body)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, csv.decode(body, np.float64).astype(np.float32))
    np.testing.assert_array_equal(got, X)
    with_gap = body.replace(b",", b",,", 1)
    with pytest.raises(DecodeError, match="row 2 has 12 fields, row 1 has 13"):
        csv.decode(with_gap)
    bad = body[:-1] + b"\n1,2,x,4,5,6,7,8,9,10,11,12\n"
    with pytest.raises(DecodeError, match="row 3001, field 3: could not convert 'x'"):
        csv.decode(bad)


def _split_path(body: bytes, dtype: type) -> np.ndarray:
    """What one row decoded to before the JSON scanner read rows of plain numbers."""
    return np.array(body.strip().split(b","), dtype=dtype).reshape(1, -1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_of_plain_numbers_decode_bit_for_bit_as_field_by_field(dtype: type) -> None:
    rng = np.random.default_rng(7)
    values = rng.standard_normal(6900) * 10.0 ** rng.integers(-45, 37, 6900)  # float32 range
    bodies = [",".join(repr(float(v)) for v in values[i : i + 69]) for i in range(0, 6900, 69)]
    bodies += [",".join(f"{v:.3e}" for v in values[i : i + 69]) for i in range(0, 690, 69)]
    bodies += [
        "0,1,-1,9007199254740993,18446744073709551617,123456789012345678901234567890",
        "-0,1,-0",  # JSON reads the integer -0 as 0: the split path keeps float's -0.0
        "-0.0,0,-0e5,1E5,1e+5,1e-5,1.5e-50",
        "+1,.5,1.,01",  # numbers float() reads and JSON does not
    ]
    for body in bodies:
        got = csv.decode(body.encode(), dtype)
        want = _split_path(body.encode(), dtype)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes(), body
