"""Splitting objects into mini-batches: pure, no processes."""

from __future__ import annotations

import itertools

import pytest

from modelhost.jobs.records import (
    MIB,
    BatchStrategy,
    SplitError,
    SplitType,
    assemble_chunk,
    line_ends,
    plan_batches,
)


def _batches(data: bytes, plan) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [data[s:e] for s, e in zip(plan.starts.tolist(), plan.ends.tolist(), strict=True)]


def test_line_ends_with_and_without_final_newline() -> None:
    assert line_ends(b"a\nbb\n").tolist() == [2, 5]
    assert line_ends(b"a\nbb").tolist() == [2, 4]
    assert line_ends(b"").tolist() == []


def test_split_none_is_one_request_per_object() -> None:
    plan = plan_batches(b"1,2\n3,4\n", SplitType.NONE, BatchStrategy.MULTI_RECORD, 6 * MIB)
    assert _batches(b"1,2\n3,4\n", plan) == [b"1,2\n3,4\n"]
    assert plan.n_records.tolist() == [1]


def test_split_none_over_the_limit_names_the_fix() -> None:
    with pytest.raises(SplitError, match="SplitType Line"):
        plan_batches(b"x" * 20, SplitType.NONE, BatchStrategy.MULTI_RECORD, 10)


def test_single_record_is_one_line_per_batch() -> None:
    data = b"a\nbb\nccc"
    plan = plan_batches(data, SplitType.LINE, BatchStrategy.SINGLE_RECORD, 6 * MIB)
    assert _batches(data, plan) == [b"a\n", b"bb\n", b"ccc"]
    assert plan.first_record.tolist() == [0, 1, 2]
    assert plan.total_records == 3


def test_multi_record_fills_batches_up_to_the_payload_limit() -> None:
    lines = [f"{i},{i * 2}\n".encode() for i in range(1000)]
    data = b"".join(lines)
    plan = plan_batches(data, SplitType.LINE, BatchStrategy.MULTI_RECORD, 1000)
    batches = _batches(data, plan)
    assert b"".join(batches) == data  # nothing lost, nothing repeated, in order
    assert all(len(b) <= 1000 and b.endswith(b"\n") for b in batches)
    assert plan.total_records == 1000
    # first_record is the running count: batch k starts with record first_record[k].
    for batch, first in zip(batches, plan.first_record.tolist(), strict=True):
        assert batch.split(b"\n", 1)[0] == lines[first].rstrip(b"\n")
    # Each batch is as full as the next line allows.
    for batch, nxt in itertools.pairwise(batches):
        assert len(batch) + len(nxt.split(b"\n", 1)[0]) + 1 > 1000


def test_multi_record_last_line_without_newline_counts() -> None:
    data = b"1\n2\n3"
    plan = plan_batches(data, SplitType.LINE, BatchStrategy.MULTI_RECORD, 4)
    assert _batches(data, plan) == [b"1\n2\n", b"3"]
    assert plan.n_records.tolist() == [2, 1]


@pytest.mark.parametrize("strategy", list(BatchStrategy))
def test_a_record_over_the_limit_is_named(strategy: BatchStrategy) -> None:
    data = b"1\n" + b"9" * 50 + b"\n3\n"
    with pytest.raises(SplitError, match="record 2 is 51 bytes"):
        plan_batches(data, SplitType.LINE, strategy, 10)


def test_zero_payload_means_no_limit() -> None:
    data = b"1\n" * 100
    plan = plan_batches(data, SplitType.LINE, BatchStrategy.MULTI_RECORD, 0)
    assert len(plan) == 1 and plan.total_records == 100


def test_empty_object_has_no_batches() -> None:
    assert len(plan_batches(b"", SplitType.LINE, BatchStrategy.MULTI_RECORD, 10)) == 0


def test_assemble_with_line_adds_one_newline_only_when_missing() -> None:
    assert assemble_chunk(b"0.1\n0.2", True) == b"0.1\n0.2\n"
    assert assemble_chunk(b"0.1\n", True) == b"0.1\n"
    assert assemble_chunk(b"0.1", False) == b"0.1"
