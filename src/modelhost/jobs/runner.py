"""One transform job run: instances for the job, mini-batches in flight, outputs assembled.

Exactly once, in input order, across instance and server crashes: every mini-batch's
output is written to its own part file (write, then rename) named by the object and the
batch index; a batch whose part exists is never sent again. When all parts of an object
exist they are concatenated, in order, into `<input>.out` (atomically), and only then is
the object recorded as done in the metadata store (`on_object`). A resumed run re-plans
each unfinished object (the plan is deterministic) and sends only the missing batches; an
object whose output was written but not yet recorded is simply assembled again from the
same parts. A rejected record fails its object (no `.out`, parts removed) and, at the
end, the job; other objects go on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelhost.fleet.http1 import HTTP1Pool
from modelhost.fleet.manager import FleetManager
from modelhost.fleet.variant import VariantFleet
from modelhost.jobs import dataprocessing as dpmod
from modelhost.jobs.instances import (
    JobFailed,
    concurrency,
    job_environment,
    keep_healthy,
    start_fleet,
    with_environment,
)
from modelhost.jobs.invoke import InvocationFailed, Invoker, NoInstance, Rejection
from modelhost.jobs.objects import InputObject, ObjectIO
from modelhost.jobs.pool import WarmFleet, WarmPool, launch_key
from modelhost.jobs.records import MIB, BatchPlan, BatchStrategy, SplitType, assemble_chunk
from modelhost.jobs.records import plan_batches as plan
from modelhost.settings import Settings

log = logging.getLogger("modelhost.jobs")


@dataclass
class Progress:
    """Live counters shown by the native describe and the CLI's progress bar."""

    objects_total: int = 0
    objects_done: int = 0
    records_done: int = 0
    records_planned: int = 0
    bytes_total: int = 0
    bytes_done: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "ObjectsTotal": self.objects_total,
            "ObjectsDone": self.objects_done,
            "RecordsDone": self.records_done,
            "RecordsPlanned": self.records_planned,
            "BytesTotal": self.bytes_total,
            "BytesDone": self.bytes_done,
        }


@dataclass
class _Object:
    source: InputObject
    data: bytes
    plan: BatchPlan
    parts: Path
    remaining: int
    failure: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


# on_object(rel, outcome) records one object's end: {"Status": "Completed", ...} or Failed.
ObjectHook = Callable[[str, dict[str, Any]], None]


class TransformRunner:
    """Runs one job to its end (or until cancelled); `run()` returns the failure reasons
    of failed objects (empty when all succeeded). Objects in `done` are skipped."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        request: dict[str, Any],
        model_name: str,
        model_spec: dict[str, Any],
        workdir: Path,
        done: set[str],
        on_object: ObjectHook,
        fleets: FleetManager,
        pool: WarmPool | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.name = name
        self.request = request
        self.model_name = model_name
        self.model_spec = model_spec
        self.workdir = workdir
        self.done = done
        self.on_object = on_object
        self.fleets = fleets
        self.progress = Progress()
        self.fatal: str | None = None
        self.io = ObjectIO(settings.s3_endpoint_url)
        tin = request["TransformInput"]
        tout = request["TransformOutput"]
        self.content_type = tin.get("ContentType")
        self.accept = tout.get("Accept")
        self.split = SplitType(tin.get("SplitType", "None"))
        self.strategy = BatchStrategy(request.get("BatchStrategy", "MultiRecord"))
        self.gzipped = tin.get("CompressionType", "None") == "Gzip"
        self.line_output = tout.get("AssembleWith", "None") == "Line"
        self.max_payload_bytes = int(request.get("MaxPayloadInMB", 6)) * MIB
        self.dp = dpmod.build(request.get("DataProcessing"), self.content_type, self.accept)
        client_config = request.get("ModelClientConfig") or {}
        self.timeout_s = float(client_config.get("InvocationsTimeoutInSeconds", 600))
        self.max_retries = int(client_config.get("InvocationsMaxRetries", 3))
        self.instances = int(request["TransformResources"]["InstanceCount"])

    # --- the run --------------------------------------------------------------------

    async def run(self) -> list[str]:
        env = job_environment(self.request, self.model_spec, self.instances)
        model_spec = with_environment(self.model_spec, env)
        key = launch_key(model_spec, self.instances)
        warm = self.pool.take(key) if self.pool is not None else None
        # Invocations of this job get their own keep-alive connections; instances,
        # their start, health checks and stop belong to the shared fleet manager.
        pool = HTTP1Pool()
        fleet: VariantFleet | None = warm.fleet if warm else None
        tasks: list[asyncio.Task[None]] = []
        reusable = False
        try:
            objects = await self._list_inputs()
            started = time.perf_counter()
            if fleet is None:
                fleet = await self._start(model_spec)
            log.info(
                "transform job %s: %d instance(s) ready in %.2f s%s",
                self.name,
                self.instances,
                time.perf_counter() - started,
                " (warm)" if warm else "",
            )
            per_instance = await concurrency(self.request, fleet, pool)
            invoker = self._invoker(fleet, pool)
            in_flight = per_instance * self.instances
            queue: asyncio.Queue[tuple[_Object, int]] = asyncio.Queue(in_flight * 2)
            failures: list[str] = []
            interval_s = self.settings.health_check_interval_s
            tasks.append(asyncio.ensure_future(keep_healthy(fleet, interval_s)))
            tasks += [
                asyncio.ensure_future(self._worker(queue, invoker, failures))
                for _ in range(in_flight)
            ]
            await self._feed(objects, queue, failures)
            reusable = self.fatal is None
            log.info(
                "transform job %s: %d records in %.2f s after the instances were ready",
                self.name,
                self.progress.records_done,
                time.perf_counter() - started,
            )
            return failures
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            pool.close()
            kept = (
                reusable
                and fleet is not None
                and self.pool is not None
                and self.pool.give(key, WarmFleet(fleet, self.fleets))
            )
            if not kept and fleet is not None:
                await self.fleets.stop_fleet(fleet, drain_s=0)

    async def _start(self, model_spec: dict[str, Any]) -> VariantFleet:
        name = f"transform-{self.name}"
        # The instance type sizes each instance's share of a Ray node (fleet/ray).
        instance_type = self.request["TransformResources"].get("InstanceType")
        return await start_fleet(
            self.fleets, name, self.model_name, model_spec, self.instances, instance_type
        )

    async def _list_inputs(self) -> list[InputObject]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        source = self.request["TransformInput"]["DataSource"]["S3DataSource"]
        objects = await asyncio.to_thread(
            self.io.list_inputs, source["S3DataType"], source["S3Uri"]
        )
        self.progress.objects_total = len(objects)
        self.progress.objects_done = sum(o.rel in self.done for o in objects)
        self.progress.bytes_total = sum(max(o.size, 0) for o in objects)
        return objects

    async def _feed(
        self,
        objects: list[InputObject],
        queue: asyncio.Queue[tuple[_Object, int]],
        failures: list[str],
    ) -> None:
        """Queue every missing batch of every unfinished object; wait for all objects."""
        pending: list[asyncio.Task[None]] = []
        for source in objects:
            if source.rel in self.done:
                continue
            obj = await self._prepare(source)
            if obj is None:
                continue
            pending.append(asyncio.ensure_future(self._finish(obj, failures)))
            for i in range(len(obj.plan)):
                if (obj.parts / _part_name(i)).exists():
                    self._count(obj, i)
                    continue
                await queue.put((obj, i))
            if obj.remaining == 0:
                obj.done.set()
        await asyncio.gather(*pending)

    def _invoker(self, fleet: VariantFleet, pool: HTTP1Pool) -> Invoker:
        wait_s = self.settings.instance_startup_timeout_s + 30
        return Invoker(fleet, pool, self._headers(), self.timeout_s, self.max_retries, wait_s)

    def _headers(self) -> list[tuple[bytes, bytes]]:
        headers = []
        if self.content_type:
            headers.append((b"content-type", self.content_type.encode()))
        if self.accept:
            headers.append((b"accept", self.accept.encode()))
        return headers

    async def _prepare(self, source: InputObject) -> _Object | None:
        parts = self.workdir / "parts" / hashlib.sha256(source.rel.encode()).hexdigest()[:24]

        def load() -> tuple[bytes, BatchPlan]:
            data = self.io.read(source, self.gzipped, self.workdir)
            return data, plan(data, self.split, self.strategy, self.max_payload_bytes)

        try:
            data, batches = await asyncio.to_thread(load)
        except ValueError as exc:  # SplitError
            self._object_failed(source, f"Object {source.url}: {exc}", parts)
            return None
        except Exception as exc:
            raise JobFailed(f"Cannot read input {source.url}: {exc}") from exc
        parts.mkdir(parents=True, exist_ok=True)
        self.progress.records_planned += batches.total_records
        return _Object(source, data, batches, parts, len(batches))

    def _count(self, obj: _Object, i: int) -> None:
        obj.remaining -= 1
        self.progress.records_done += int(obj.plan.n_records[i])
        self.progress.bytes_done += int(obj.plan.ends[i] - obj.plan.starts[i])

    async def _worker(
        self, queue: asyncio.Queue[tuple[_Object, int]], invoker: Invoker, failures: list[str]
    ) -> None:
        while True:
            obj, i = await queue.get()
            try:
                if self.fatal is not None:
                    obj.failure = obj.failure or self.fatal
                if obj.failure is None:
                    await self._batch(obj, i, invoker)
            except _Rejected as exc:
                obj.failure = obj.failure or str(exc)
            except (InvocationFailed, NoInstance) as exc:
                first = int(obj.plan.first_record[i]) + 1
                last = first + int(obj.plan.n_records[i]) - 1
                obj.failure = obj.failure or (
                    f"Object {obj.source.url}: records {first}-{last}: {exc}"
                )
                if isinstance(exc, NoInstance):
                    self.fatal = str(exc)
            except Exception as exc:  # a bug or a full disk must not stall the queue
                log.exception("transform job %s: batch %d of %s", self.name, i, obj.source.url)
                obj.failure = obj.failure or f"Object {obj.source.url}: {exc}"
            finally:
                queue.task_done()
                self._count(obj, i)
                if obj.remaining == 0:
                    obj.done.set()

    async def _batch(self, obj: _Object, i: int, invoker: Invoker) -> None:
        raw = obj.data[int(obj.plan.starts[i]) : int(obj.plan.ends[i])]
        by_line = self.split == SplitType.LINE
        records: list[bytes] | None = None
        body = raw
        if not self.dp.identity:
            records = dpmod.split_records(raw, by_line)
            try:
                body = dpmod.filter_input(self.dp, records)
            except dpmod.RecordError as exc:
                raise self._rejected(obj, i, exc.record, str(exc)) from exc
        answer = await invoker.post(body)
        if isinstance(answer, Rejection):
            recs = records if records is not None else dpmod.split_records(raw, by_line)

            def body_of(sub: list[bytes]) -> bytes:
                if self.dp.identity:
                    return b"\n".join(sub) + (b"\n" if by_line else b"")
                return dpmod.filter_input(self.dp, sub)

            index, rejection = await invoker.find_rejected(recs, body_of, answer)
            raise self._rejected(
                obj, i, index, f"the model answered {rejection.status}: {rejection.message}"
            )
        if records is None:
            out = assemble_chunk(answer, self.line_output)
        else:
            try:
                out = dpmod.join_output(self.dp, records, answer)
            except dpmod.RecordError as exc:
                raise self._rejected(obj, i, exc.record, str(exc)) from exc
        await asyncio.to_thread(_write_atomically, obj.parts / _part_name(i), out)

    def _rejected(self, obj: _Object, i: int, index: int, message: str) -> _Rejected:
        record = int(obj.plan.first_record[i]) + index + 1
        return _Rejected(f"Object {obj.source.url}: record {record}: {message}")

    async def _finish(self, obj: _Object, failures: list[str]) -> None:
        await obj.done.wait()
        if obj.failure is not None:
            failures.append(obj.failure)
            self._object_failed(obj.source, obj.failure, obj.parts)
            return
        output_path = self.request["TransformOutput"]["S3OutputPath"]
        parts = [obj.parts / _part_name(i) for i in range(len(obj.plan))]
        url = await asyncio.to_thread(
            self.io.write_output, output_path, obj.source.rel, parts, self.workdir
        )
        self.on_object(
            obj.source.rel,
            {"Status": "Completed", "Records": obj.plan.total_records, "Output": url},
        )
        self.progress.objects_done += 1
        obj.data = b""
        shutil.rmtree(obj.parts, ignore_errors=True)

    def _object_failed(self, source: InputObject, reason: str, parts: Path) -> None:
        log.warning("transform job %s: %s", self.name, reason)
        self.on_object(source.rel, {"Status": "Failed", "FailureReason": reason})
        shutil.rmtree(parts, ignore_errors=True)


class _Rejected(Exception):
    """A record of this object was rejected; the text names object, record and message."""


def _part_name(i: int) -> str:
    return f"{i:09d}.part"


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
