"""Per-model adaptive batching in a multi-model instance, in process (no HTTP server).

Requests for the same TargetModel that arrive together share one predict call; requests
for other models never join it, and a request that fails fails alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelhost.container.multimodel import MultiModelHost
from modelhost.testing.churn import csv_body
from modelhost.testing.state_models import StateModels
from tests.container.multimodel_support import Answer, call, load_model, multimodel_host


def _score(body: bytes) -> float:
    return float(body.decode().strip().split(",")[0])


@pytest.fixture
def mixed(models: StateModels) -> list[tuple[str, bytes]]:
    """Interleaved one-row requests for CA and NY, and one CA request with a bad row."""
    out = []
    for i in range(3):
        for state in ("CA", "NY"):
            out.append((state, csv_body(models.rows[state][i : i + 1]).encode()))
    out.insert(3, ("CA", b"1,2,3\n"))  # three features: the model wants 69
    return out


def test_requests_for_one_model_share_a_predict_and_a_bad_one_fails_alone(
    tmp_path: Path, models: StateModels, mixed: list[tuple[str, bytes]]
) -> None:
    async def scenario() -> tuple[MultiModelHost, list[Answer]]:
        host = multimodel_host(tmp_path)
        for state in ("CA", "NY"):
            await load_model(host, models, state)
        calls = [
            call(host, f"/models/{state}.tar.gz/invoke", body, f"{state}.tar.gz")
            for state, body in mixed
        ]
        return host, list(await asyncio.gather(*calls))

    host, answers = asyncio.run(scenario())
    try:
        good = [(s, a) for (s, body), a in zip(mixed, answers, strict=True) if body != b"1,2,3\n"]
        bad = answers[3]
        assert bad[0] == 400 and b"69" in bad[1], bad
        seen: dict[str, int] = {"CA": 0, "NY": 0}
        for state, (status, body) in good:
            assert status == 200, body
            i = seen[state]
            seen[state] += 1
            want = float(models.expected(state, models.rows[state][i : i + 1])[0])
            assert _score(body) == pytest.approx(want, rel=1e-6)
        for state in ("CA", "NY"):
            batcher = host.models[f"{state}.tar.gz"].served.batcher
            assert batcher is not None
            # Three good requests of each model, one predict call each model.
            assert (batcher.calls, batcher.batched_rows, batcher.largest) == (1, 3, 3)
    finally:
        host.close()


def test_batching_off_predicts_each_request_alone(
    tmp_path: Path, models: StateModels, mixed: list[tuple[str, bytes]]
) -> None:
    async def scenario() -> tuple[MultiModelHost, list[Answer]]:
        host = multimodel_host(tmp_path, batching=False)
        await load_model(host, models, "CA")
        calls = [
            call(host, "/models/CA.tar.gz/invoke", body, "CA.tar.gz")
            for state, body in mixed
            if state == "CA"
        ]
        return host, list(await asyncio.gather(*calls))

    host, answers = asyncio.run(scenario())
    try:
        assert host.models["CA.tar.gz"].served.batcher is None
        assert [status for status, _ in answers] == [200, 200, 400, 200]
    finally:
        host.close()
