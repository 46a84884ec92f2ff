"""Access keys at rest: encrypted secrets, private files, revocation, the bootstrap key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from modelhost.errors import JsonTooDeep, ValidationException
from modelhost.gateway.auth.guard import check_json_depth
from modelhost.gateway.auth.keys import KeyStore
from modelhost.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_encrypted_at_rest_in_private_files(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    key_id, secret = store.create("invoker", "churn-*")
    text = (tmp_path / "auth" / "keys.json").read_text()
    assert key_id in text and secret not in text
    assert _mode(tmp_path / "auth" / "keys.json") == 0o600
    assert _mode(tmp_path / "auth") == 0o700
    # The master key is not beside the ciphertexts (tests/gateway/test_master_key.py).
    assert not (tmp_path / "auth" / "master.key").exists()
    # Another process (the same home) decrypts it with the master key ...
    found = KeyStore(tmp_path)
    found.load()
    assert found.active(key_id) is not None
    assert found.active(key_id)[1] == secret  # type: ignore[index]
    # ... and under another master key the ciphertext is useless.
    other = Settings(home=tmp_path, secret_key=Fernet.generate_key().decode())
    orphan = KeyStore(tmp_path, other)
    orphan.load()
    assert orphan.active(key_id) is None


def test_describe_never_shows_the_secret(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    key_id, secret = store.create("deployer")
    listed = json.dumps([k.describe() for k in store.list()])
    assert key_id in listed and secret not in listed and "secret" not in listed.lower()


def test_revoke_and_the_last_admin(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    admin = store.ensure_admin()
    assert admin is not None
    assert store.ensure_admin() is None  # one admin is enough
    with pytest.raises(ValidationException, match="last active admin"):
        store.revoke(admin[0])
    other, _ = store.create("admin")
    assert store.revoke(admin[0]) is not None
    assert store.active(admin[0]) is None
    assert store.active(other) is not None
    assert store.revoke("MHNOSUCHKEY") is None


def test_bootstrap_credentials(tmp_path: Path) -> None:
    assert KeyStore(tmp_path).bootstrap_credentials() is None
    created = KeyStore(tmp_path).ensure_admin()
    assert KeyStore(tmp_path).bootstrap_credentials() == created


@pytest.mark.parametrize(
    ("role", "endpoints"),
    [("root", "*"), ("invoker", ""), ("invoker", "a;rm -rf /"), ("invoker", "x" * 300)],
)
def test_bad_grants_are_refused(tmp_path: Path, role: str, endpoints: str) -> None:
    with pytest.raises(ValidationException):
        KeyStore(tmp_path).create(role, endpoints)


def test_json_depth() -> None:
    assert check_json_depth(b'{"a": [1, {"b": 2}]}', 3) == {"a": [1, {"b": 2}]}
    with pytest.raises(JsonTooDeep):
        check_json_depth(b"[" * 4 + b"]" * 4, 3)
    with pytest.raises(JsonTooDeep):
        check_json_depth(b"[" * 100_000 + b"]" * 100_000, 32)  # past the recursion limit
    assert check_json_depth(b"not json", 3) is None
    assert check_json_depth(b"", 3) is None
