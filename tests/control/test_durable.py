"""The durable-job base (control/durable.py) with a toy job whose work the test controls:
resume after a restart, stop with and without a run, failures and internal errors, and
the end time and clipped reason a finished job carries. No processes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelhost.control.durable import DurableJobs
from modelhost.control.status import MAX_REASON
from modelhost.errors import ResourceInUse, ResourceNotFound, ValidationException
from modelhost.resources.status import ProcessingJobStatus as Status
from modelhost.settings import Settings
from modelhost.store.metadata import Kind, MetadataStore, Record


class ToyJobs(DurableJobs):
    """Processing-job records whose run waits for the test to give it an outcome."""

    kind = Kind.PROCESSING_JOB
    arn_type = "processing-job"
    directory = "toy-jobs"
    noun = "toy job"
    end_time_key = "EndTime"
    active = (Status.IN_PROGRESS,)
    stopping = Status.STOPPING
    stopped = Status.STOPPED
    failed = Status.FAILED
    failures = (ValidationException,)
    log = logging.getLogger("tests.toy")

    def __init__(self, settings: Settings, store: MetadataStore) -> None:
        super().__init__(settings, store)
        self.outcomes: dict[str, asyncio.Future[Any]] = {}
        self.interrupted: list[str] = []
        self.cleaned: list[tuple[str, str]] = []

    def create(self, name: str) -> str:
        return self._submit(name, {"Request": {}}, None, Status.IN_PROGRESS).arn

    async def _work(self, name: str) -> Any:
        future = self.outcomes[name] = asyncio.get_running_loop().create_future()
        outcome = await future
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _succeeded(self, name: str, outcome: Any) -> None:
        self._finish(name, Status.COMPLETED, None, Output=outcome)

    def _interrupt(self, name: str) -> None:
        self.interrupted.append(name)

    def _cleanup(self, name: str, status: Any) -> None:
        self.cleaned.append((name, str(status)))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    store = MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")
    yield store
    store.close()


def _jobs(tmp_path: Path, store: MetadataStore) -> ToyJobs:
    return ToyJobs(Settings(home=tmp_path), store)


def _rec(store: MetadataStore, name: str) -> Record:
    rec = store.get(Kind.PROCESSING_JOB, name)
    assert rec is not None
    return rec


async def _until(check: Any) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def test_a_run_completes_fails_or_errs_and_the_record_says_so(
    tmp_path: Path, store: MetadataStore
) -> None:
    async def scenario() -> None:
        jobs = _jobs(tmp_path, store)
        assert jobs.create("ok").endswith(":processing-job/ok")
        jobs.create("bad")
        jobs.create("boom")
        await _until(lambda: len(jobs.outcomes) == 3)
        jobs.outcomes["ok"].set_result("done")
        jobs.outcomes["bad"].set_result(ValidationException("x" * 5000))
        jobs.outcomes["boom"].set_result(RuntimeError("disk on fire"))
        await _until(lambda: not jobs._runs)

    asyncio.run(scenario())
    ok, bad, boom = (_rec(store, n) for n in ("ok", "bad", "boom"))
    assert ok.status == Status.COMPLETED and ok.spec["Output"] == "done"
    assert ok.spec["EndTime"] >= ok.created_s and ok.failure_reason is None
    assert bad.status == Status.FAILED and len(bad.failure_reason or "") == MAX_REASON
    assert (bad.failure_reason or "").endswith("...")
    assert boom.status == Status.FAILED and boom.failure_reason == "Internal error: disk on fire"


def test_names_are_unique_and_a_missing_job_is_not_found(
    tmp_path: Path, store: MetadataStore
) -> None:
    async def scenario() -> None:
        jobs = _jobs(tmp_path, store)
        jobs.create("j")
        with pytest.raises(ResourceInUse, match="Toy job j already exists"):
            jobs.create("j")
        with pytest.raises(ResourceNotFound, match="Toy job nope does not exist"):
            jobs._get("nope")
        await jobs.stop()

    asyncio.run(scenario())


def test_stop_cancels_the_run_and_a_restart_resumes_or_stops(
    tmp_path: Path, store: MetadataStore
) -> None:
    async def first_server() -> None:
        jobs = _jobs(tmp_path, store)
        for name in ("stopped", "resumed", "stopping"):
            jobs.create(name)
        await _until(lambda: len(jobs.outcomes) == 3)
        jobs._stop(_rec(store, "stopped"))
        await _until(lambda: "stopped" not in jobs._runs)
        await jobs.stop()  # shutdown: the others stay InProgress

    asyncio.run(first_server())
    assert _rec(store, "stopped").status == Status.STOPPED
    rec = _rec(store, "stopping")
    assert rec.status == Status.IN_PROGRESS
    rec.status = Status.STOPPING  # as a stop through a server that died before its run did
    store.save(rec)

    async def second_server() -> None:
        jobs = _jobs(tmp_path, store)
        await jobs.start()
        assert set(jobs._runs) == {"resumed"}
        await _until(lambda: "resumed" in jobs.outcomes)
        jobs.outcomes["resumed"].set_result("again")
        await _until(lambda: not jobs._runs)
        # A job with no run here stops at once.
        jobs.create("idle")
        jobs._runs.pop("idle").cancel()
        jobs._stop(_rec(store, "idle"))
        assert jobs.interrupted == ["idle"] and ("idle", "Stopped") in jobs.cleaned
        await jobs.stop()

    asyncio.run(second_server())
    statuses = {r.name: r.status for r in store.list(Kind.PROCESSING_JOB)}
    assert statuses == {
        "stopped": Status.STOPPED,
        "resumed": Status.COMPLETED,
        "stopping": Status.STOPPED,
        "idle": Status.STOPPED,
    }
