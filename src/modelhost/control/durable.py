"""The lifecycle every durable job manager shares (transform, processing, compilation and
inference recommendations jobs).

A job is one record in the metadata store, run by one asyncio task in this process. On
start, a job that was stopping becomes stopped and an active one runs again (each manager
decides how far back it starts); on shutdown the runs are cancelled and their jobs stay
active, to run next start. Stop marks the job stopping and cancels its run, whose end
writes stopped; a job with no run here is stopped at once. A finished job carries its end
time and a clipped failure reason.

With `claims` (several gateways on PostgreSQL), the gateway that claims a job runs it and
a sweep keeps resuming what a dead gateway left; without, this gateway runs everything.

It lives below `jobs`, `compile` and `loadtest` so that all of them can share it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from modelhost.control.status import clip
from modelhost.errors import ModelhostError, ResourceInUse, ResourceNotFound
from modelhost.resources.names import arn
from modelhost.settings import Settings
from modelhost.store.coordination import WorkClaims, is_postgres
from modelhost.store.metadata import AlreadyExists, Kind, MetadataStore, Record


class DurableJobs:
    """Base of a job manager: persistence, resume, runs, stop and finish of one kind of job.

    A subclass names its kind and statuses (the class attributes below), does the work in
    `_work` and ends a successful run in `_succeeded`; `_interrupt` ends what a run started
    outside the event loop (a process) when its job is stopped, `_ended` forgets a run's
    own bookkeeping and `_cleanup` removes a finished job's scratch files.
    """

    kind: ClassVar[Kind]
    arn_type: ClassVar[str]  # the ARN's resource type: "transform-job"
    directory: ClassVar[str]  # the work directories' folder under the home
    noun: ClassVar[str]  # "transform job", in messages and logs
    end_time_key: ClassVar[str]  # the spec member a finished job's end time goes in
    active: ClassVar[tuple[StrEnum, ...]]  # statuses whose job runs again on start
    stopping: ClassVar[StrEnum]
    stopped: ClassVar[StrEnum]
    failed: ClassVar[StrEnum]
    # Exceptions a run fails with as the job's own fault: FailureReason is the message,
    # after `failure_prefix`; any other exception is an internal error.
    failures: ClassVar[tuple[type[Exception], ...]] = (ModelhostError,)
    failure_prefix: ClassVar[str] = ""
    # Exceptions that end a run and leave its job as it is, for another gateway to resume
    # (this one lost the job's claim, say).
    abandons: ClassVar[tuple[type[Exception], ...]] = ()
    log: ClassVar[logging.Logger]

    def __init__(
        self, settings: Settings, store: MetadataStore, claims: WorkClaims | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.claims = claims
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Resume what a previous server left running (with claims on PostgreSQL, keep
        resuming what a dead gateway was running)."""
        self._resume()
        if self.claims is not None and is_postgres(self.settings.metadata_url):
            self._sweeper = asyncio.ensure_future(self._sweep())

    def _resume(self) -> None:
        for rec in self.store.list(self.kind):
            if rec.status != self.stopping and rec.status not in self.active:
                continue
            if rec.name in self._runs or not self._claim(rec.name):
                continue  # running here already, or on another, live gateway
            if rec.status == self.stopping:
                self._finish(rec.name, self.stopped, None)
                self._release(rec.name)
            else:
                self.log.info("resuming %s %s", self.noun, rec.name)
                self._launch(rec)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.settings.leader_poll_interval_s)
            try:
                self._resume()
            except Exception:
                self.log.warning("resuming %ss failed; retrying", self.noun, exc_info=True)

    async def stop(self) -> None:
        """Server shutdown: runs are cancelled but their jobs stay active, to run next start."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = list(self._runs.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runs.clear()
        if self.claims is not None:
            self.claims.close()

    def workdir(self, name: str) -> Path:
        return self.settings.home / self.directory / name

    def _claim(self, name: str) -> bool:
        return self.claims is None or self.claims.claim(self.kind, name)

    def _release(self, name: str) -> None:
        if self.claims is not None:
            self.claims.release(self.kind, name)

    # --- records --------------------------------------------------------------------

    def _arn(self, name: str) -> str:
        return arn(self.settings.region, self.settings.account_id, self.arn_type, name)

    def _get(self, name: str) -> Record:
        rec = self.store.get(self.kind, name)
        if rec is None:
            raise self._not_found(name)
        return rec

    def _not_found(self, name: str) -> ModelhostError:
        return ResourceNotFound(
            f"{self.noun.capitalize()} {name} does not exist ({self._arn(name)})."
        )

    def _duplicate(self, rec: Record) -> ModelhostError:
        return ResourceInUse(
            f"{self.noun.capitalize()} {rec.name} already exists ({rec.arn}); job names are "
            "unique within an account and region."
        )

    def _submit(
        self,
        name: str,
        spec: dict[str, Any],
        tags: list[Any] | None,
        status: StrEnum,
        now: float | None = None,
    ) -> Record:
        """Store a new job created at `now` and run it (here, unless another gateway
        claimed it already)."""
        now = time.time() if now is None else now
        tags = list(tags or [])
        rec = Record(self.kind, name, self._arn(name), spec, tags, status, None, now, now)
        try:
            self.store.create(rec)
        except AlreadyExists:
            raise self._duplicate(rec) from None
        if self._claim(name):  # else the leader resumed it already
            self._launch(rec)
        return rec

    def _set_status(self, rec: Record, status: StrEnum, **spec: Any) -> None:
        rec.status = status
        rec.spec.update(spec)
        rec.modified_s = time.time()
        self.store.save(rec)

    def _stop(self, rec: Record) -> None:
        """Stop an active job: its run ends it Stopped; with none anywhere, now."""
        self._set_status(rec, self.stopping)
        self._interrupt(rec.name)
        task = self._runs.get(rec.name)
        if task is not None:
            task.cancel()
        elif self._claim(rec.name):
            self._finish(rec.name, self.stopped, None)
            self._release(rec.name)
        # else another gateway runs it and stops it at its next check.

    def _finish(self, name: str, status: StrEnum, reason: str | None = None, **spec: Any) -> None:
        rec = self.store.get(self.kind, name)
        if rec is None:
            return
        if reason:
            rec.failure_reason = clip(reason)
        self._set_status(rec, status, **{self.end_time_key: time.time()}, **spec)
        self._cleanup(name, status)

    # --- runs -----------------------------------------------------------------------

    def _launch(self, rec: Record) -> None:
        self._runs[rec.name] = asyncio.ensure_future(self._run(rec.name))

    async def _run(self, name: str) -> None:
        # The run and its claim last until the job's final status is written: a sweep
        # (PostgreSQL) finding it active, unclaimed and not running, would resume it and
        # run its completion (a transform job's data capture, say) a second time.
        try:
            await self._attempt(name)
        except asyncio.CancelledError:
            current = self.store.get(self.kind, name)
            if current is not None and current.status == self.stopping:
                self._finish(name, self.stopped, None)
            raise
        finally:
            self._runs.pop(name, None)
            self._ended(name)
            self._release(name)

    async def _attempt(self, name: str) -> None:
        try:
            outcome = await self._work(name)
        except self.abandons as exc:
            self.log.warning("%s %s: %s; another gateway resumes it", self.noun, name, exc)
            return
        except self.failures as exc:
            self._finish(name, self.failed, f"{self.failure_prefix}{exc}")
            return
        except Exception as exc:
            self.log.exception("%s %s failed", self.noun, name)
            self._finish(name, self.failed, f"Internal error: {exc}")
            return
        await self._succeeded(name, outcome)

    async def _work(self, name: str) -> Any:
        """Run job `name`; what it returns goes to `_succeeded`."""
        raise NotImplementedError

    async def _succeeded(self, name: str, outcome: Any) -> None:
        """The run returned `outcome`: finish the job (Completed, or Failed on its merits)."""
        raise NotImplementedError

    def _interrupt(self, name: str) -> None:
        """End what the run of `name` started outside the event loop (its job is stopped)."""

    def _ended(self, name: str) -> None:
        """The run of `name` is over: forget its own bookkeeping."""

    def _cleanup(self, name: str, status: StrEnum) -> None:
        """Job `name` finished with `status`: remove what it no longer needs."""
