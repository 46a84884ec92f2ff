"""Access keys in the metadata database (gateway/auth/key_table.py), on SQLite here; the
two-gateway behaviour on PostgreSQL is in test_gateways_shared.py."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from modelhost.gateway.auth.key_table import KeyTable
from modelhost.gateway.auth.keys import KeyStatus, KeyStore
from modelhost.settings import Settings
from modelhost.store.metadata import MetadataStore


def _settings(home: Path, key: bytes) -> Settings:
    return Settings(home=home, secret_key=key.decode())


def test_keys_json_is_imported_once_and_then_shared(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    shared, another = Fernet.generate_key(), Fernet.generate_key()
    old = KeyStore(tmp_path / "a", _settings(tmp_path / "a", shared))
    admin = old.ensure_admin()
    assert admin is not None
    table = KeyTable(store.engine)
    assert table.import_file(old.path) == 1
    assert not old.path.exists() and old.path.with_name("keys.json.imported").exists()
    assert table.import_file(old.path) == 0  # renamed: nothing to import again
    a = KeyStore(tmp_path / "a", _settings(tmp_path / "a", shared), records=table)
    a.load()
    assert a.active(admin[0]) == (a.list()[0], admin[1])
    # A second home with the same master key sees the keys and their changes.
    b = KeyStore(tmp_path / "b", _settings(tmp_path / "b", shared), records=KeyTable(store.engine))
    assert b.ensure_admin() is None  # a's bootstrap admin key counts
    assert b.bootstrap_credentials() == admin
    key_id, secret = b.create("invoker", "churn-*")
    a.refresh()
    found = a.active(key_id)
    assert found is not None and found[1] == secret and found[0].endpoints == "churn-*"
    assert a.revoke(key_id) is not None
    b.refresh()
    assert b.active(key_id) is None
    assert [k.status for k in b.list() if k.access_key_id == key_id] == [KeyStatus.REVOKED]
    # A home with another master key cannot use those keys: it gets an admin key of its own.
    other = KeyStore(
        tmp_path / "c", _settings(tmp_path / "c", another), records=KeyTable(store.engine)
    )
    own = other.ensure_admin()
    assert own is not None and other.bootstrap_credentials() == own
    a.refresh()
    assert a.active(own[0]) is None  # not decryptable with a's master key
    store.close()
