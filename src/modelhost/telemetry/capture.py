"""Data capture: what endpoints received and answered, in SageMaker's JSON Lines format.

The request path only samples and `offer`s a `Captured` (references to the bodies it
already holds) to a bounded buffer; it never waits, encodes or writes. A background task
(`CaptureWriter.run`) drains the buffer every `flush_interval_s`, encodes the records and
writes one file per (destination, endpoint, variant, hour) and flush, off the event loop,
under SageMaker's layout:

    {DestinationS3Uri}/{endpoint}/{variant}/yyyy/mm/dd/hh/{MM}-{SS}-{mmm}-{uuid}.jsonl

One record per line:

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
      "data": "1,2,3", "encoding": "CSV"}, "endpointOutput": {...  "mode": "OUTPUT" ...}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<given>",
      "inferenceTime": "2026-12-06T12:00:00Z"}, "eventVersion": "0"}

When the buffer is full a record is dropped and counted (`DataCaptureRecordsDropped`),
never the request slowed or failed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter

from modelhost.resources.capture import CaptureConfig

log = logging.getLogger("modelhost.capture")

LABELS = ("EndpointName", "VariantName")


class Captured(NamedTuple):
    """One sampled invocation, as the request path hands it over (nothing encoded yet; a
    NamedTuple because building one is the request path's whole share of the cost)."""

    config: CaptureConfig
    endpoint: str
    variant: str
    time_s: float
    inference_id: str | None
    input_type: bytes  # content types as the headers carried them: decoded off the path
    input_body: bytes
    output_type: bytes
    output_body: bytes


class CaptureMetrics:
    """Captured, written and dropped records, per endpoint and variant."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.written = Counter(
            "DataCaptureRecords",
            "Data capture records written to the capture destination.",
            LABELS,
            registry=registry,
        )
        self.dropped = Counter(
            "DataCaptureRecordsDropped",
            "Sampled data capture records dropped because the capture buffer was full or "
            "the destination could not be written (requests are never slowed or failed).",
            LABELS,
            registry=registry,
        )


class CaptureBuffer:
    """A bounded buffer between the request path and the writer; `offer` is O(1)."""

    def __init__(self, max_records: int, metrics: CaptureMetrics | None = None) -> None:
        self.max_records = max_records
        self.metrics = metrics
        self.items: deque[Captured] = deque()
        self.dropped = 0

    def offer(self, item: Captured) -> bool:
        if len(self.items) >= self.max_records:
            self.drop(item.endpoint, item.variant)
            return False
        self.items.append(item)
        return True

    def drop(self, endpoint: str, variant: str, count: int = 1) -> None:
        self.dropped += count
        if self.metrics is not None:
            self.metrics.dropped.labels(endpoint, variant).inc(count)

    def drain(self) -> list[Captured]:
        out = list(self.items)
        self.items.clear()
        return out


# C-accelerated JSON string literal (quotes and escapes): the writer composes each line
# from literals rather than dumping dicts, several times cheaper per record.
_quote = json.encoder.encode_basestring_ascii


def _side(config: CaptureConfig, mode: str, raw_type: bytes, body: bytes) -> str:
    content_type = raw_type.decode("latin-1")
    encoding = config.encoding(content_type)
    data = None
    if encoding != "BASE64":
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"  # not text after all: recorded base64-encoded, as SageMaker
    if data is None:
        data = base64.b64encode(body).decode("ascii")
    return (
        f'{{"observedContentType":{_quote(content_type)},"mode":"{mode}",'
        f'"data":{_quote(data)},"encoding":"{encoding}"}}'
    )


class _Stamps:
    """inferenceTime strings, cached per second (a batch's records share a few seconds),
    and event ids: UUID-shaped, from one random 128-bit base per writer plus a counter."""

    def __init__(self) -> None:
        self.second = -1
        self.text = ""
        self.base = uuid.uuid4().int
        self.count = 0

    def time(self, time_s: float) -> str:
        second = int(time_s)
        if second != self.second:
            self.second = second
            self.text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self.text

    def event_id(self) -> str:
        self.count += 1
        h = f"{(self.base + self.count) & ((1 << 128) - 1):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def line(item: Captured, stamps: _Stamps, event_id: str | None = None) -> str:
    """The JSON Lines record of one capture (see the module docstring), without newline."""
    sides = []
    if item.config.capture_input:
        sides.append(
            '"endpointInput":' + _side(item.config, "INPUT", item.input_type, item.input_body)
        )
    if item.config.capture_output:
        sides.append(
            '"endpointOutput":' + _side(item.config, "OUTPUT", item.output_type, item.output_body)
        )
    meta = f'"eventId":{_quote(event_id or stamps.event_id())}'
    if item.inference_id is not None:
        meta += f',"inferenceId":{_quote(item.inference_id)}'
    meta += f',"inferenceTime":"{stamps.time(item.time_s)}"'
    return f'{{"captureData":{{{",".join(sides)}}},"eventMetadata":{{{meta}}},"eventVersion":"0"}}'


def record(item: Captured, event_id: str | None = None) -> dict[str, Any]:
    """The record of one capture as a dict (what a line holds)."""
    parsed: dict[str, Any] = json.loads(line(item, _Stamps(), event_id))
    return parsed


def hour_prefix(destination: str, endpoint: str, variant: str, time_s: float) -> str:
    """`{destination}/{endpoint}/{variant}/yyyy/mm/dd/hh` (UTC)."""
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(time_s))
    return "/".join([destination.rstrip("/"), endpoint, variant, hour])


def file_name(time_s: float) -> str:
    """SageMaker's capture file name: minute, second, millisecond and a unique id."""
    t = time.gmtime(time_s)
    millis = int((time_s % 1) * 1000)
    return f"{t.tm_min:02d}-{t.tm_sec:02d}-{millis:03d}-{uuid.uuid4()}.jsonl"


def batch_files(items: list[Captured]) -> dict[tuple[str, str, str], tuple[str, bytes, int]]:
    """Group records into files: (endpoint, variant, url) -> (url, JSON Lines, count)."""
    groups: dict[str, list[Captured]] = {}
    for item in items:
        prefix = hour_prefix(item.config.destination, item.endpoint, item.variant, item.time_s)
        groups.setdefault(prefix, []).append(item)
    out: dict[tuple[str, str, str], tuple[str, bytes, int]] = {}
    stamps = _Stamps()
    for prefix, group in groups.items():
        url = f"{prefix}/{file_name(group[0].time_s)}"
        lines = "".join(line(i, stamps) + "\n" for i in group)
        out[(group[0].endpoint, group[0].variant, url)] = (url, lines.encode(), len(group))
    return out


Write = Callable[[str, bytes], None]


class CaptureWriter:
    """Drains a CaptureBuffer into capture files in the background (module docstring)."""

    def __init__(
        self,
        buffer: CaptureBuffer,
        write: Write,
        flush_interval_s: float,
        metrics: CaptureMetrics | None = None,
    ) -> None:
        self.buffer = buffer
        self.write = write
        self.flush_interval_s = flush_interval_s
        self.metrics = metrics

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush()

    async def flush(self) -> int:
        """Write what is buffered now; returns the records written."""
        items = self.buffer.drain()
        if not items:
            return 0
        return await asyncio.to_thread(self.write_batch, items)

    def write_batch(self, items: list[Captured]) -> int:
        written = 0
        for (endpoint, variant, _), (url, data, count) in batch_files(items).items():
            try:
                self.write(url, data)
            except Exception as exc:
                # A destination that cannot be written loses these records, counted, and
                # never fails an invocation.
                log.warning("data capture: cannot write %s: %s", url, exc)
                self.buffer.drop(endpoint, variant, count)
                continue
            written += count
            if self.metrics is not None:
                self.metrics.written.labels(endpoint, variant).inc(count)
        return written
