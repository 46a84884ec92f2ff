"""InputFilter / JoinSource / OutputFilter against the reference's worked examples."""

from __future__ import annotations

import json

import pytest

from modelhost.jobs import dataprocessing as dp
from modelhost.jobs import jsonpath


def _eval(path: str, value: object) -> object:
    return jsonpath.evaluate(jsonpath.parse(path), value)


def test_jsonpath_subset() -> None:
    row = ["id7", "1", "2", "3", "4", "5"]
    assert _eval("$", row) == row
    assert _eval("$[1:]", row) == ["1", "2", "3", "4", "5"]
    # The end of a slice is inclusive: $[1:4] is the 2nd to the 5th column.
    assert _eval("$[1:4]", row) == ["1", "2", "3", "4"]
    assert _eval("$[0,-1]", row) == ["id7", "5"]
    assert _eval("$[0,2:3]", row) == ["id7", "2", "3"]
    assert _eval("$[-1]", row) == "5"
    doc = {"id": 1, "features": [1, 2], "meta": {"a": 1}}
    assert _eval("$.features", doc) == [1, 2]
    assert _eval("$.meta.a", doc) == 1
    assert _eval("$['id','features']", doc) == {"id": 1, "features": [1, 2]}
    assert _eval("$.*", {"a": 1, "b": 2}) == [1, 2]
    assert _eval("$[*]", [1, 2]) == [1, 2]


@pytest.mark.parametrize("bad", ["features", "$[[0]]", "$[0", "$.a b", "$[x]"])
def test_jsonpath_outside_the_subset_is_refused(bad: str) -> None:
    with pytest.raises(jsonpath.JSONPathError):
        jsonpath.parse(bad)


def test_jsonpath_missing_key_and_index_are_errors() -> None:
    with pytest.raises(jsonpath.JSONPathError, match="no key 'x'"):
        _eval("$.x", {"a": 1})
    with pytest.raises(jsonpath.JSONPathError, match="out of range"):
        _eval("$[5]", ["a"])


def test_csv_id_plus_prediction_example() -> None:
    """Reference: InputFilter "$[1:]", JoinSource Input, OutputFilter "$[0,-1]" gives
    ID + prediction."""
    proc = dp.build(
        {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
        "text/csv",
        "text/csv",
    )
    records = [b"id1,1.5,2", b"id2,3,4.25"]
    assert dp.filter_input(proc, records) == b"1.5,2\n3,4.25\n"
    assert dp.join_output(proc, records, b"0.1\n0.9\n") == b"id1,0.1\nid2,0.9\n"


def test_csv_join_appends_output_columns() -> None:
    """Reference: [1,2,3] + [1] -> [1,2,3,1]."""
    proc = dp.build({"JoinSource": "Input"}, "text/csv", "text/csv")
    assert dp.join_output(proc, [b"1,2,3"], b"1") == b"1,2,3,1\n"


def test_json_join_and_output_filter_example() -> None:
    """Reference: the output goes under SageMakerOutput; OutputFilter
    $['id','SageMakerOutput'] keeps the id and the prediction."""
    proc = dp.build(
        {
            "InputFilter": "$.features",
            "JoinSource": "Input",
            "OutputFilter": "$['id','SageMakerOutput']",
        },
        "application/jsonlines",
        "application/jsonlines",
    )
    records = [b'{"id": 1, "features": [1, 2]}', b'{"id": 2, "features": [3, 4]}']
    assert dp.filter_input(proc, records) == b"[1,2]\n[3,4]\n"
    out = dp.join_output(proc, records, b'{"score": 0.1}\n{"score": 0.7}\n')
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines == [
        {"id": 1, "SageMakerOutput": {"score": 0.1}},
        {"id": 2, "SageMakerOutput": {"score": 0.7}},
    ]


def test_json_join_wraps_non_objects_and_reads_predictions_arrays() -> None:
    proc = dp.build({"JoinSource": "Input"}, "application/jsonlines", "application/json")
    out = dp.join_output(proc, [b"[1,2]", b"[3,4]"], b'{"predictions": [{"score": 0.5}, 0.25]}')
    assert [json.loads(x) for x in out.splitlines()] == [
        {"SageMakerInput": [1, 2], "SageMakerOutput": {"score": 0.5}},
        {"SageMakerInput": [3, 4], "SageMakerOutput": 0.25},
    ]


def test_output_count_mismatch_is_an_error() -> None:
    proc = dp.build({"JoinSource": "Input"}, "text/csv", "text/csv")
    with pytest.raises(dp.RecordError, match="2 output records for 3 input records"):
        dp.join_output(proc, [b"1", b"2", b"3"], b"0\n1\n")


def test_input_filter_error_names_the_record() -> None:
    proc = dp.build({"InputFilter": "$[3]"}, "text/csv", "text/csv")
    with pytest.raises(dp.RecordError) as info:
        dp.filter_input(proc, [b"1,2,3,4", b"1,2"])
    assert info.value.record == 1


def test_data_processing_needs_text_formats() -> None:
    with pytest.raises(ValueError, match="ContentType"):
        dp.build({"JoinSource": "Input"}, "application/x-npy", None)
    assert dp.build(None, "application/x-npy", None).identity
