"""Several gateways: a transform job runs on exactly one, and the leader resumes the jobs
of a gateway that died (claims on a real PostgreSQL; runs replaced by a recorder)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from modelhost.jobs.manager import TransformJobs
from modelhost.resources.status import TransformJobStatus
from modelhost.settings import Settings
from modelhost.store.metadata import Kind, MetadataStore, Record
from modelhost.testing.postgres import PostgresCluster

pytestmark = pytest.mark.integration


class Gateway:
    """The transform-job side of one gateway, with runs recorded instead of started."""

    def __init__(self, url: str, home: Path) -> None:
        settings = Settings(home=home, database_url=url, leader_poll_interval_s=0.05)
        self.store = MetadataStore(url)
        self.jobs = TransformJobs(settings, self.store, None)  # type: ignore[arg-type]
        self.launched: list[str] = []
        self.jobs._launch = lambda rec: self.launched.append(rec.name)  # type: ignore[method-assign]

    def close(self) -> None:
        self.jobs.claims.close()
        self.store.close()


def _job(name: str) -> Record:
    spec: dict[str, Any] = {"Request": {}, "Model": {}, "Objects": {}}
    return Record(
        Kind.TRANSFORM_JOB, name, f"arn:{name}", spec, [], TransformJobStatus.IN_PROGRESS,
        None, 1.0, 1.0,
    )  # fmt: skip


def test_a_job_runs_on_one_gateway_and_is_resumed_when_it_dies(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    url = postgres.fresh_database_url()
    runner, leader = Gateway(url, tmp_path / "a"), Gateway(url, tmp_path / "b")
    try:
        runner.store.create(_job("j1"))
        assert runner.jobs.claims.claim(Kind.TRANSFORM_JOB, "j1")  # as create does
        leader.jobs._resume()
        assert leader.launched == []  # running on a live gateway
        runner.close()  # the runner's gateway dies

        async def sweep_until_launched() -> None:
            await leader.jobs.start()
            deadline = time.monotonic() + 60
            while not leader.launched and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert leader.jobs._sweeper is not None
            leader.jobs._sweeper.cancel()

        asyncio.run(sweep_until_launched())
        assert leader.launched == ["j1"]
        # Claimed by the leader now: a third gateway leaves it alone.
        third = Gateway(url, tmp_path / "c")
        third.jobs._resume()
        assert third.launched == []
        third.close()
    finally:
        runner.close()
        leader.close()


class _DoneRunner:
    """A runner whose every object is written already."""

    async def run(self) -> None:
        return None


def test_a_completing_job_is_not_resumed_by_the_sweep(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    """The run and its claim last until the final status is written: the sweep found the
    job InProgress and unclaimed while its completion (data capture) ran, and ran it again
    (the capture came out twice)."""
    url = postgres.fresh_database_url()
    gateway = Gateway(url, tmp_path / "a")
    try:
        gateway.store.create(_job("j1"))

        async def run_while_sweeping() -> None:
            completing, release = asyncio.Event(), asyncio.Event()

            async def slow_complete(name: str) -> None:
                completing.set()
                await release.wait()
                gateway.jobs._finish(name, TransformJobStatus.COMPLETED, None)

            gateway.jobs._complete = slow_complete  # type: ignore[method-assign]
            assert gateway.jobs.claims.claim(Kind.TRANSFORM_JOB, "j1")  # as create does
            runner: Any = _DoneRunner()
            gateway.jobs._runners["j1"] = runner
            task = asyncio.ensure_future(gateway.jobs._run("j1"))
            gateway.jobs._runs["j1"] = task
            await asyncio.wait_for(completing.wait(), 30)
            gateway.jobs._resume()  # one sweep, mid-completion
            release.set()
            await asyncio.wait_for(task, 30)

        asyncio.run(run_while_sweeping())
        assert gateway.launched == []
        rec = gateway.store.get(Kind.TRANSFORM_JOB, "j1")
        assert rec is not None and rec.status == TransformJobStatus.COMPLETED
        assert gateway.jobs._runs == {}
    finally:
        gateway.close()
