"""The metadata store behaves the same on SQLite and on a real PostgreSQL (`metadata_url`
runs each test on both)."""

from __future__ import annotations

import threading

import pytest

from modelhost.store.metadata import AlreadyExists, Kind, MetadataStore, Record


def _endpoint(name: str = "e1") -> Record:
    spec = {"EndpointConfigName": "c"}
    return Record(Kind.ENDPOINT, name, f"arn:{name}", spec, [], "Creating", None, 1.0, 1.0)


def test_crud_survives_reopen(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    rec = _endpoint()
    store.create(rec)
    with pytest.raises(AlreadyExists):
        store.create(rec)
    rec.status, rec.failure_reason, rec.modified_s = "Failed", "why", 2.0
    store.save(rec)
    store.close()
    again = MetadataStore(metadata_url)
    got = again.get(Kind.ENDPOINT, "e1")
    assert got is not None
    assert (got.status, got.failure_reason, got.modified_s) == ("Failed", "why", 2.0)
    assert got.spec == {"EndpointConfigName": "c"}
    assert again.get(Kind.MODEL, "e1") is None  # kinds are separate namespaces
    assert [r.name for r in again.list(Kind.ENDPOINT)] == ["e1"]
    assert again.delete(Kind.ENDPOINT, "e1") is True
    assert again.delete(Kind.ENDPOINT, "e1") is False
    assert again.list(Kind.ENDPOINT) == []
    again.close()


def test_specs_and_tags_round_trip_as_json(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    spec = {"Nested": {"List": [1, 2.5, None, True], "Text": "naïve ✓"}, "Empty": {}}
    tags = [{"Key": "team", "Value": "ünïcode"}]
    store.create(Record(Kind.MODEL, "m", "arn:m", spec, tags, None, None, 3.0, 4.0))
    got = store.get(Kind.MODEL, "m")
    assert got is not None
    assert (got.spec, got.tags, got.status, got.created_s) == (spec, tags, None, 3.0)
    store.close()


def test_concurrent_creates_of_one_name_admit_exactly_one(metadata_url: str) -> None:
    stores = [MetadataStore(metadata_url) for _ in range(2)]  # as two gateways
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def create(store: MetadataStore) -> None:
        barrier.wait()
        try:
            store.create(_endpoint("race"))
            outcomes.append("created")
        except AlreadyExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=create, args=(stores[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["created", "exists", "exists", "exists"]
    for store in stores:
        store.close()


def test_update_is_a_locked_read_modify_write(metadata_url: str) -> None:
    stores = [MetadataStore(metadata_url) for _ in range(2)]
    rec = _endpoint()
    rec.spec = {"Objects": {}}
    stores[0].create(rec)

    def add(store: MetadataStore, key: str) -> None:
        store.update(Kind.ENDPOINT, "e1", lambda r: r.spec["Objects"].__setitem__(key, 1))

    threads = [threading.Thread(target=add, args=(stores[i % 2], f"o{i}")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    got = stores[1].get(Kind.ENDPOINT, "e1")
    assert got is not None
    # No update lost another's key, though each wrote the whole spec back.
    assert sorted(got.spec["Objects"]) == [f"o{i}" for i in range(8)]
    assert stores[0].update(Kind.ENDPOINT, "missing", lambda r: None) is None
    for store in stores:
        store.close()
