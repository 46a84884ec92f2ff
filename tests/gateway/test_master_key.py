"""Where the master key of stored secrets comes from: the environment, a private key file,
the user's config directory (never the state home by default), an old home's own key."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from modelhost.errors import UnsafeConfiguration
from modelhost.gateway.auth.keys import KeyStore
from modelhost.gateway.auth.master_key import create_private
from modelhost.settings import Settings
from modelhost.testing.server import ModelhostServer


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _key() -> str:
    return Fernet.generate_key().decode()


def _store(home: Path, **settings: object) -> KeyStore:
    return KeyStore(home, Settings(home=home, **settings))  # type: ignore[arg-type]


def _key_file(path: Path, mode: int = 0o600) -> Path:
    path.write_text(_key() + "\n")
    path.chmod(mode)
    return path


def test_default_key_file_is_private_and_outside_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    home = tmp_path / "home"
    key_id, secret = KeyStore(home).create("invoker")
    key_file = tmp_path / "config" / "modelhost" / "master.key"
    assert _mode(key_file) == 0o600 and _mode(key_file.parent) == 0o700
    assert not (home / "auth" / "master.key").exists()
    again = KeyStore(home)
    again.load()
    assert again.active(key_id) == (again.list()[0], secret)


def test_environment_key_lets_homes_share_access_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    key = _key()
    key_id, secret = _store(tmp_path / "a", secret_key=key).create("deployer")
    # The records reach another home (a shared store, a copied file); the key, the environment.
    (tmp_path / "b" / "auth").mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "auth" / "keys.json", tmp_path / "b" / "auth" / "keys.json")
    other = _store(tmp_path / "b", secret_key=key)
    other.load()
    found = other.active(key_id)
    assert found is not None and found[1] == secret
    assert not (tmp_path / "config").exists()  # no key file was made


def test_key_file(tmp_path: Path) -> None:
    path = _key_file(tmp_path / "master.key")
    key_id, secret = _store(tmp_path / "home", secret_key_file=path).create("admin")
    again = _store(tmp_path / "home", secret_key_file=path)
    again.load()
    found = again.active(key_id)
    assert found is not None and found[1] == secret


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_key_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path / "master.key", mode)
    with pytest.raises(UnsafeConfiguration, match=f"chmod 600 {path}"):
        _store(tmp_path / "home", secret_key_file=path).create("admin")


def test_missing_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.key"
    with pytest.raises(UnsafeConfiguration, match="does not exist"):
        _store(tmp_path / "home", secret_key_file=path).create("admin")
    assert not path.exists()  # never made up: every gateway must get the same key


def test_malformed_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(UnsafeConfiguration, match="not a Fernet key") as caught:
        _store(tmp_path / "home", secret_key="hunter2-not-a-key").create("admin")
    assert "hunter2" not in caught.value.message


def test_wrong_key_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_id, _ = _store(home, secret_key=_key()).create("admin")
    wrong = _store(home, secret_key=_key())
    with pytest.raises(UnsafeConfiguration, match="decrypts none of the 1 active access keys"):
        wrong.check_master_key()
    wrong.load()
    assert wrong.active(key_id) is None  # a request with it: unknown key, not a 500


def test_rotation_reencrypts_under_the_new_key(tmp_path: Path) -> None:
    home, old, new = tmp_path / "home", _key(), _key()
    store = _store(home, secret_key=old)
    first, second = store.create("admin"), store.create("invoker")
    rotating = _store(home, secret_key=new, secret_key_previous=[old])
    rotating.check_master_key()
    after = _store(home, secret_key=new)
    after.check_master_key()
    after.load()
    for key_id, secret in (first, second):
        found = after.active(key_id)
        assert found is not None and found[1] == secret
    with pytest.raises(UnsafeConfiguration):
        _store(home, secret_key=old).check_master_key()


def test_an_old_home_keeps_its_key_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    home = tmp_path / "home"
    (home / "auth").mkdir(parents=True)
    legacy = _key_file(home / "auth" / "master.key")
    key_id, secret = _store(home, secret_key_file=legacy).create("admin")
    with caplog.at_level(logging.WARNING):
        store = KeyStore(home)
        store.check_master_key()
    assert "beside the ciphertexts" in caplog.text
    found = store.active(key_id)
    assert found is not None and found[1] == secret
    assert not (tmp_path / "config").exists()


def test_concurrent_creation_keeps_the_first_key(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "master.key"
    create_private(path, b"first")
    create_private(path, b"second")
    assert path.read_bytes() == b"first\n"
    assert os.listdir(path.parent) == ["master.key"]


@pytest.mark.integration
def test_gateways_with_different_homes_share_keys_through_the_secret_key(
    tmp_path: Path,
) -> None:
    key = _key()

    def env(home: str, secret_key: str) -> dict[str, str]:
        # The homes' keys.json (on PostgreSQL the keys would be in the shared database).
        url = f"sqlite:///{tmp_path / home / 'modelhost.db'}"
        return {"MODELHOST_SECRET_KEY": secret_key, "MODELHOST_DATABASE_URL": url}

    with ModelhostServer(tmp_path / "a", env=env("a", key)) as a:
        (tmp_path / "b" / "auth").mkdir(parents=True)
        shutil.copy(tmp_path / "a" / "auth" / "keys.json", tmp_path / "b" / "auth")
        with ModelhostServer(tmp_path / "b", env=env("b", key)) as b:
            assert b.credentials == a.credentials
            sm = b.client("sagemaker")
            assert sm.list_endpoints()["Endpoints"] == []
        wrong = ModelhostServer(tmp_path / "b", env=env("b", _key()))
        with pytest.raises(RuntimeError, match="exited"):
            wrong.start()
        assert "decrypts none of the 1 active access keys" in wrong.log_tail()
