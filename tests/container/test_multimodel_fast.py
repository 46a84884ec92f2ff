"""Multi-model invocations answered without a task (container/multimodel_fast.py).

In process: a `MultiModelHost` with real XGBoost state models, and connections that record
what the instance's HTTP server would write. Requests offered in one callback belong to
one loop turn, so "arrived together" is exact here, not a matter of timing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from modelhost.container.http_connection import Request
from modelhost.container.invoke import Reply
from modelhost.container.multimodel_fast import model_name
from modelhost.testing.churn import csv_body
from modelhost.testing.state_models import StateModels
from tests.container.multimodel_support import (
    Connection,
    call,
    invoke_request,
    load_model,
    multimodel_host,
    offer_together,
)

BAD_ROW = b"1,2,3\n"  # three features: the models want 69


def _request(state: str, body: bytes) -> Request:
    return invoke_request(f"{state}.tar.gz", body)


def _score(reply: Reply) -> float:
    return float(reply.body.decode().strip().split(",")[0])


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_mixed_models_in_one_turn_merge_per_model_and_a_bad_request_fails_alone(
    tmp_path: Path, models: StateModels
) -> None:
    host = multimodel_host(tmp_path)
    try:

        async def load() -> None:
            for state in ("CA", "NY", "TX"):
                await load_model(host, models, state)

        _run(load())
        requests, want = [], []
        for i in range(3):
            for state in ("CA", "NY", "TX"):
                row = models.rows[state][i : i + 1]
                requests.append(_request(state, csv_body(row).encode()))
                want.append(float(models.expected(state, row)[0]))
        requests.insert(4, _request("NY", BAD_ROW))
        want.insert(4, None)
        offered = offer_together(host, requests)

        assert all(taken for taken, _ in offered)
        for (_, connection), expected in zip(offered, want, strict=True):
            assert not connection.held
            [reply] = connection.replies
            if expected is None:
                assert reply.status == 400 and b"69" in reply.body, reply
            else:
                assert reply.status == 200, reply.body
                assert _score(reply) == pytest.approx(expected, rel=1e-6)
        # Three models, three good requests each: one predict call per model.
        assert (host.tick.calls, host.tick.predicted_rows, host.tick.largest) == (3, 9, 3)
        # Each model's own counters (GET /modelhost/stats): one merged call of 3 rows.
        for state in ("CA", "NY", "TX"):
            listed = host._describe(host.models[f"{state}.tar.gz"])
            assert listed["batching"] == {
                "batches": 1,
                "batchedRows": 3,
                "alone": 0,
                "largestRows": 3,
            }
        assert host.stats()["batching"]["batchedRows"] == 9
        # Nothing stays pinned: every model may be evicted again.
        for state in ("CA", "NY", "TX"):
            entry = host.cache.get(f"{state}.tar.gz")
            assert entry is not None and entry.in_flight == 0
    finally:
        host.close()


def test_a_failing_merged_predict_is_repeated_per_request(
    tmp_path: Path, models: StateModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = multimodel_host(tmp_path)
    try:
        _run(load_model(host, models, "CA"))
        runtime = host.models["CA.tar.gz"].served.runtime
        real = runtime.predict
        poison = models.rows["CA"][1:2]

        def predict(data: Any) -> Any:
            # A model that fails on one particular row (as a user's model may).
            if any((row == poison[0]).all() for row in data):
                raise ValueError("this row breaks the model")
            return real(data)

        monkeypatch.setattr(runtime, "predict", predict)
        rows = [models.rows["CA"][i : i + 1] for i in range(3)]
        offered = offer_together(host, [_request("CA", csv_body(r).encode()) for r in rows])
        statuses = [connection.replies[0].status for _, connection in offered]
        assert statuses == [200, 500, 200]
        ok = offered[2][1].replies[0]
        assert _score(ok) == pytest.approx(float(models.expected("CA", rows[2])[0]), rel=1e-6)
    finally:
        host.close()


def test_a_model_not_loaded_is_left_to_the_asgi_path_and_answers_once_loaded(
    tmp_path: Path, models: StateModels
) -> None:
    host = multimodel_host(tmp_path)
    try:
        _run(load_model(host, models, "CA"))
        row = models.rows["NY"][:1]
        ca = _request("CA", csv_body(models.rows["CA"][:1]).encode())
        ny = _request("NY", csv_body(row).encode())
        offered = offer_together(host, [ca, ny])
        # CA answered in the turn; NY is not offered (the ASGI path answers its 404, the
        # gateway loads it and sends it again).
        assert offered[0][0] and offered[0][1].replies[0].status == 200
        assert offered[1] == (False, offered[1][1]) and not offered[1][1].replies
        status, body = _run(call(host, "/models/NY.tar.gz/invoke", ny.body))
        assert status == 404, body
        _run(load_model(host, models, "NY"))
        [(taken, connection)] = offer_together(host, [ny])
        assert taken
        assert _score(connection.replies[0]) == pytest.approx(
            float(models.expected("NY", row)[0]), rel=1e-6
        )
    finally:
        host.close()


def test_batching_off_answers_on_the_spot(tmp_path: Path, models: StateModels) -> None:
    host = multimodel_host(tmp_path, batching=False)
    try:
        _run(load_model(host, models, "CA"))
        good = _request("CA", csv_body(models.rows["CA"][:1]).encode())
        offered = offer_together(host, [good, _request("CA", BAD_ROW)])
        assert [c.replies[0].status for _, c in offered] == [200, 400]
        assert host.tick.calls == 0  # no tick: each answered inside `offer`
    finally:
        host.close()


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (b"/models/CA.tar.gz/invoke", "CA.tar.gz"),
        (b"/models/a%2Fb.tar.gz/invoke", "a/b.tar.gz"),
        (b"/models/CA.tar.gz/invoke?x=1", None),
        (b"/models//invoke", None),
        (b"/models/a/b/invoke", None),
        (b"/models/CA.tar.gz", None),
        (b"/invocations", None),
    ],
)
def test_model_name(url: bytes, name: str | None) -> None:
    assert model_name(url) == name


def test_shutdown_answers_what_is_queued(tmp_path: Path, models: StateModels) -> None:
    host = multimodel_host(tmp_path)
    try:
        _run(load_model(host, models, "CA"))

        async def scenario() -> Connection:
            connection = Connection(asyncio.get_running_loop())
            request = _request("CA", csv_body(models.rows["CA"][:1]).encode())
            assert host.offer(connection, request)  # type: ignore[arg-type]
            assert connection.held and not connection.replies
            host.tick.close()  # before the loop turn ends
            return connection

        connection = _run(scenario())
        assert [r.status for r in connection.replies] == [503] and not connection.held
        entry = host.cache.get("CA.tar.gz")
        assert entry is not None and entry.in_flight == 0
    finally:
        host.close()
