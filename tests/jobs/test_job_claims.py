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
