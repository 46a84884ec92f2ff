"""Every prediction-store backend, on a real server: load, get, re-load, replace, delete."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.errors import PredictionNotFound, ValidationException
from modelhost.settings import Settings
from modelhost.store.predictions import PredictionStore, ValueFormat, open_prediction_store
from tests.store.predictions.support import store_url


def rows(run: str, n: int) -> Iterator[tuple[str, str]]:
    return ((f"cust-{i:05d}", f"{run}:{i}") for i in range(n))


def test_load_then_get(backend: PredictionStore, name: str) -> None:
    run = backend.load(name, "night-1", rows("a", 300), ValueFormat.TEXT)
    assert (run.store, run.run_id, run.key_count, run.loaded) == (name, "night-1", 300, True)
    got_run, value = backend.get(name, "cust-00042")
    assert value == "a:42" and got_run.run_id == "night-1"
    assert backend.get(name, "nobody")[1] is None
    found = backend.get_many(name, ["cust-00001", "nobody", "cust-00299", "cust-00001"])
    assert found.values == {"cust-00001": "a:1", "cust-00299": "a:299"}
    assert found.run.run_id == "night-1"
    described = backend.describe(name)
    assert described is not None
    assert (described.run_id, described.key_count) == ("night-1", 300)
    assert described.value_format is ValueFormat.TEXT
    assert name in [r.store for r in backend.list_stores()]


def test_reload_of_the_current_run_is_a_no_op(backend: PredictionStore, name: str) -> None:
    first = backend.load(name, "night-1", rows("a", 50), ValueFormat.JSON)
    again = backend.load(name, "night-1", rows("ignored", 10), ValueFormat.JSON)
    assert again.loaded is False
    assert (again.run_id, again.key_count, again.loaded_at_s) == (
        "night-1", 50, pytest.approx(first.loaded_at_s),
    )  # fmt: skip
    assert backend.get(name, "cust-00003")[1] == "a:3"


def test_new_run_replaces_the_old_one(backend: PredictionStore, name: str) -> None:
    backend.load(name, "night-1", rows("a", 100), ValueFormat.TEXT)
    # Night 2 drops customers 80-99, adds 100-119, and a duplicate key keeps its last value.
    new = [(k, v) for k, v in rows("b", 120) if not 80 <= int(k[5:]) < 100]
    run = backend.load(name, "night-2", [*new, ("cust-00000", "b:last")], ValueFormat.TEXT)
    assert run.key_count == 100
    assert backend.get(name, "cust-00000")[1] == "b:last"
    assert backend.get(name, "cust-00010")[1] == "b:10"
    assert backend.get(name, "cust-00085")[1] is None  # not in the new run
    assert backend.get(name, "cust-00110")[1] == "b:110"
    assert [r.run_id for r in backend.list_stores() if r.store == name] == ["night-2"]


def test_a_failed_load_leaves_the_current_run(backend: PredictionStore, name: str) -> None:
    backend.load(name, "night-1", rows("a", 20), ValueFormat.TEXT)

    def broken() -> Iterator[tuple[str, str]]:
        yield from rows("b", 10)
        raise ValidationException("output 3 has fewer lines than its input")

    with pytest.raises(ValidationException):
        backend.load(name, "night-2", broken(), ValueFormat.TEXT)
    current = backend.describe(name)
    assert current is not None and current.run_id == "night-1"
    assert backend.get(name, "cust-00005")[1] == "a:5"
    # Retrying the same run id after the failure loads it whole.
    assert backend.load(name, "night-2", rows("b", 20), ValueFormat.TEXT).key_count == 20
    assert backend.get(name, "cust-00005")[1] == "b:5"


def test_missing_store_and_bad_names(backend: PredictionStore, name: str) -> None:
    with pytest.raises(PredictionNotFound, match="does not exist"):
        backend.get(name, "k")
    with pytest.raises(PredictionNotFound):
        backend.get_many(name, ["k"])
    assert backend.describe(name) is None
    assert backend.delete(name) is False
    with pytest.raises(ValidationException, match="storeName"):
        backend.load("bad_name!", "r1", rows("a", 1), ValueFormat.TEXT)
    with pytest.raises(ValidationException, match="runId"):
        backend.load(name, "bad run", rows("a", 1), ValueFormat.TEXT)


def test_delete(backend: PredictionStore, name: str) -> None:
    backend.load(name, "night-1", rows("a", 30), ValueFormat.TEXT)
    assert backend.delete(name) is True
    assert backend.describe(name) is None
    with pytest.raises(PredictionNotFound):
        backend.get(name, "cust-00001")
    # The name can be used again, from scratch.
    assert backend.load(name, "night-1", rows("c", 5), ValueFormat.TEXT).loaded is True
    assert backend.get(name, "cust-00001")[1] == "c:1"


def test_atomic_replace_while_lookups_run(backend: PredictionStore, name: str) -> None:
    """Readers see the old run or the new one, whole: never a mix, never a miss.

    Each load stops half way (after the first write batches) until the reader has made
    more lookups, so lookups certainly run against a half-loaded run.
    """
    keys = 400 if backend.kind == "dynamodb" else 25_000  # past one write batch elsewhere
    backend.load(name, "run-0", rows("r0", keys), ValueFormat.TEXT)
    stop = threading.Event()
    problems: list[str] = []
    seen_runs: list[int] = []

    def reader() -> None:
        rng = random.Random(7)
        last = 0
        for _ in range(200_000):  # bounded; stops when the loads are done
            if stop.is_set():
                return
            batch = [f"cust-{rng.randrange(keys):05d}" for _ in range(rng.choice((1, 5)))]
            found = backend.get_many(name, batch)
            run_no = int(found.run.run_id.split("-")[1])
            if len(found.values) != len(set(batch)):
                missed = sorted(set(batch) - set(found.values))
                problems.append(f"miss in {found.run.run_id}: {missed}")
            tags = {v.split(":")[0] for v in found.values.values()}
            if tags != {f"r{run_no}"}:
                problems.append(f"mixed or wrong values {tags} for {found.run.run_id}")
            if run_no < last:
                problems.append(f"went back from run {last} to {run_no}")
            last = run_no
            seen_runs.append(run_no)

    def wait_for_lookups(count: int) -> None:
        target = len(seen_runs) + count
        deadline = time.monotonic() + 30
        while thread.is_alive() and len(seen_runs) < target and time.monotonic() < deadline:
            time.sleep(0.001)

    def paused_rows(run_no: int) -> Iterator[tuple[str, str]]:
        for i, row in enumerate(rows(f"r{run_no}", keys)):
            if i == keys * 6 // 10:
                wait_for_lookups(20)
            yield row

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for run_no in range(1, 4):
            backend.load(name, f"run-{run_no}", paused_rows(run_no), ValueFormat.TEXT)
        deadline = time.monotonic() + 30
        while thread.is_alive() and not (seen_runs and seen_runs[-1] == 3):
            assert time.monotonic() < deadline, "the reader never saw the last run"
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(60)
    assert not problems, problems[:5]
    assert set(seen_runs) >= {0, 1, 2, 3}
    assert backend.get(name, "cust-00007")[1] == "r3:7"


def test_async_lookups(backend: PredictionStore, name: str) -> None:
    """What the gateway calls: Redis through its asyncio client, others inline or in a thread."""
    backend.load(name, "night-1", rows("a", 10), ValueFormat.TEXT)

    async def lookups() -> tuple[str | None, dict[str, str], str | None]:
        try:
            _, one = await backend.get_async(name, "cust-00002")
            many = await backend.get_many_async(name, ["cust-00003", "nobody"])
            _, missing = await backend.get_async(name, "nobody")
            with pytest.raises(PredictionNotFound):
                await backend.get_async("no-such-store", "k")
            return one, many.values, missing
        finally:
            await backend.aclose()

    assert asyncio.run(lookups()) == ("a:2", {"cust-00003": "a:3"}, None)


def test_concurrent_loads_of_one_store_leave_one_whole_run(
    backend: PredictionStore, name: str
) -> None:
    keys = 300
    backend.load(name, "run-0", rows("r0", keys), ValueFormat.TEXT)
    errors: list[BaseException] = []

    def load(run_id: str) -> None:
        try:
            backend.load(name, run_id, rows(run_id, keys), ValueFormat.TEXT)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(r,)) for r in ("run-1", "run-1", "run-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    current = backend.describe(name)
    assert current is not None and current.run_id in ("run-1", "run-2")
    assert current.key_count == keys
    found = backend.get_many(name, [f"cust-{i:05d}" for i in range(keys)])
    assert found.values == {f"cust-{i:05d}": f"{current.run_id}:{i}" for i in range(keys)}
    if backend.kind == "redis":  # nothing left behind: no staging hash, no older run
        client = backend.client  # type: ignore[attr-defined]
        left = sorted(client.scan_iter(match=f"*:{name}:*"))
        assert left == [f"modelhost:predictions:run:{name}:{current.run_id}"]


def test_dynamodb_drops_rows_of_a_crashed_load(
    request: pytest.FixtureRequest, tmp_path: Path, name: str
) -> None:
    """A load killed before its switch leaves a marker; a later load deletes its rows.

    (The embedded store rolls a crashed load back; Redis expires its staging hash.)
    """
    from modelhost.store.predictions import dynamodb

    url = store_url("dynamodb", request)
    backend = open_prediction_store(Settings(home=tmp_path, prediction_store_url=url))
    assert isinstance(backend, dynamodb.DynamoDBPredictionStore)
    backend.ensure_table()
    crashed = "night-1.deadbeef0000"
    started = time.time() - dynamodb.ABANDONED_AFTER_S - 60
    backend.client.put_item(
        TableName=backend.table,
        Item={"pk": {"S": "#loading"}, "sk": {"S": f"{name}#{crashed}"},
              "started_at_s": {"N": repr(started)}},
    )  # fmt: skip
    pk = f"{name}#{crashed}#{dynamodb.shard_of('cust-1'):02d}"
    backend.client.put_item(
        TableName=backend.table, Item={"pk": {"S": pk}, "sk": {"S": "cust-1"}, "v": {"S": "x"}}
    )
    backend.load(name, "night-1", rows("a", 5), ValueFormat.TEXT)
    left = backend.client.get_item(
        TableName=backend.table, Key={"pk": {"S": pk}, "sk": {"S": "cust-1"}}
    )
    assert "Item" not in left
    markers = backend.client.query(
        TableName=backend.table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "#loading"}},
    )["Items"]
    assert [m for m in markers if m["sk"]["S"].startswith(f"{name}#")] == []
