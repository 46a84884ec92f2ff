"""application/x-npy and text/libsvm."""

from __future__ import annotations

import io

import numpy as np
import pytest

from modelhost.codecs import libsvm, npy
from modelhost.errors import DecodeError, EncodeError


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_npy_round_trip() -> None:
    array = np.random.default_rng(1).random((4, 3))
    back = npy.decode(npy.encode(array))
    np.testing.assert_array_equal(back, array)
    assert back.dtype == array.dtype


def test_npy_one_d_becomes_a_row() -> None:
    assert npy.decode(_npy(np.arange(5.0))).shape == (1, 5)


def test_npy_refuses_pickles_and_garbage() -> None:
    with pytest.raises(DecodeError):
        npy.decode(_npy(np.array([{"a": 1}], dtype=object)))
    with pytest.raises(DecodeError):
        npy.decode(b"not an npy file")
    with pytest.raises(DecodeError):
        npy.decode(_npy(np.zeros((2, 2, 2))))


def test_npy_encode_object_array_is_an_error() -> None:
    with pytest.raises(EncodeError):
        npy.encode(np.array([{"a": 1}], dtype=object))


def test_libsvm_one_based_indices_shift_down() -> None:
    arr = libsvm.decode(b"1 1:0.5 3:2\n0 2:1")
    assert arr.shape == (2, 3)
    assert arr[0, 0] == 0.5 and arr[0, 2] == 2 and np.isnan(arr[0, 1])
    assert arr[1, 1] == 1 and np.isnan(arr[1, 0])


def test_libsvm_zero_based_indices_kept_and_labels_optional() -> None:
    arr = libsvm.decode(b"0:1 2:3\n1:2")
    assert arr.shape == (2, 3)
    assert arr[0, 0] == 1 and arr[0, 2] == 3 and arr[1, 1] == 2


def test_libsvm_errors() -> None:
    with pytest.raises(DecodeError) as info:
        libsvm.decode(b"1 a:b")
    assert "row 1" in info.value.message
    with pytest.raises(DecodeError):
        libsvm.decode(b"1 2:3 oops")
    with pytest.raises(DecodeError):
        libsvm.decode(b"\n")
