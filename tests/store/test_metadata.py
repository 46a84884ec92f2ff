from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.store.metadata import AlreadyExists, Kind, MetadataStore, Record


def test_crud_survives_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = MetadataStore(url)
    rec = Record(
        Kind.ENDPOINT, "e1", "arn:e1", {"EndpointConfigName": "c"}, [], "Creating", None, 1.0, 1.0
    )
    store.create(rec)
    with pytest.raises(AlreadyExists):
        store.create(rec)
    rec.status, rec.failure_reason, rec.modified_s = "Failed", "why", 2.0
    store.save(rec)
    store.close()
    again = MetadataStore(url)
    got = again.get(Kind.ENDPOINT, "e1")
    assert got is not None
    assert (got.status, got.failure_reason, got.modified_s) == ("Failed", "why", 2.0)
    assert got.spec == {"EndpointConfigName": "c"}
    assert again.get(Kind.MODEL, "e1") is None  # kinds are separate namespaces
    assert [r.name for r in again.list(Kind.ENDPOINT)] == ["e1"]
    assert again.delete(Kind.ENDPOINT, "e1") is True
    assert again.delete(Kind.ENDPOINT, "e1") is False
