"""Splitting one input object into mini-batches (SplitType, BatchStrategy, MaxPayloadInMB).

Pure functions over bytes. Nothing here walks records one by one in Python: MultiRecord
cuts are found with `bytes.rfind` from each payload limit (one C call per mini-batch) and
records are counted with `bytes.count`; SingleRecord finds every line end at once with
numpy. The plan is deterministic for the same bytes and parameters, which is what lets a
resumed job recognise the mini-batches it already finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

MIB = 1024 * 1024


class SplitType(StrEnum):
    NONE = "None"
    LINE = "Line"


class BatchStrategy(StrEnum):
    SINGLE_RECORD = "SingleRecord"
    MULTI_RECORD = "MultiRecord"


class SplitError(ValueError):
    """The object cannot be cut under the payload limit; the text names record and sizes."""


@dataclass(frozen=True)
class BatchPlan:
    """Mini-batch i is `data[starts[i]:ends[i]]` and holds records
    `first_record[i] .. first_record[i] + n_records[i] - 1` (0-based within the object)."""

    starts: NDArray[np.int64]
    ends: NDArray[np.int64]
    first_record: NDArray[np.int64]
    n_records: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def total_records(self) -> int:
        return int(self.n_records.sum())


def _plan(starts: list[int], ends: list[int], counts: list[int]) -> BatchPlan:
    n = np.asarray(counts, dtype=np.int64)
    first = np.zeros(len(n), dtype=np.int64)
    if len(n) > 1:
        np.cumsum(n[:-1], out=first[1:])
    return BatchPlan(np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), first, n)


def line_ends(data: bytes) -> NDArray[np.int64]:
    """End offset (exclusive, after the newline) of every line; the last line may lack
    its newline. Blank trailing content after the final newline is not a record."""
    nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10).astype(np.int64) + 1
    if len(data) and (not len(nl) or nl[-1] != len(data)):
        nl = np.append(nl, np.int64(len(data)))
    return nl


def plan_batches(
    data: bytes, split: SplitType, strategy: BatchStrategy, max_payload_bytes: int
) -> BatchPlan:
    """Cut `data` into mini-batches. `max_payload_bytes` 0 means no limit (SageMaker's
    MaxPayloadInMB 0, chunked transfer). Raises SplitError when a record (or, with
    SplitType None, the object) is larger than the limit."""
    limit = max_payload_bytes or len(data) or 1
    if not data:
        return _plan([], [], [])
    if split == SplitType.NONE:
        if len(data) > limit:
            raise SplitError(
                f"the object is {len(data)} bytes, more than MaxPayloadInMB "
                f"({max_payload_bytes // MIB} MB); split it with SplitType Line"
            )
        return _plan([0], [len(data)], [1])
    if strategy == BatchStrategy.SINGLE_RECORD:
        ends = line_ends(data)
        starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
        too_big = np.flatnonzero(ends - starts > limit)
        if len(too_big):
            i = int(too_big[0])
            raise _too_big(i, int(ends[i] - starts[i]), max_payload_bytes)
        ones = np.ones(len(ends), dtype=np.int64)
        return BatchPlan(starts, ends, np.arange(len(ends), dtype=np.int64), ones)
    starts_l: list[int] = []
    ends_l: list[int] = []
    counts: list[int] = []
    pos, size, record = 0, len(data), 0
    while pos < size:
        if size - pos <= limit:
            end = size
        else:
            cut = data.rfind(b"\n", pos, pos + limit)
            if cut < 0:
                nxt = data.find(b"\n", pos)
                length = (size if nxt < 0 else nxt + 1) - pos
                raise _too_big(record, length, max_payload_bytes)
            end = cut + 1
        n = data.count(b"\n", pos, end) + (0 if data[end - 1] == 10 else 1)
        starts_l.append(pos)
        ends_l.append(end)
        counts.append(n)
        record += n
        pos = end
    return _plan(starts_l, ends_l, counts)


def _too_big(record: int, length: int, max_payload_bytes: int) -> SplitError:
    return SplitError(
        f"record {record + 1} is {length} bytes, more than MaxPayloadInMB "
        f"({max_payload_bytes // MIB} MB) allows for one request"
    )


def assemble_chunk(body: bytes, assemble_with_line: bool) -> bytes:
    """One mini-batch's output as it goes into `<input>.out`: AssembleWith Line ends it
    with a newline (unless the model already did); None keeps the bytes as they are."""
    if assemble_with_line and body and not body.endswith(b"\n"):
        return body + b"\n"
    return body
