"""Where the master key that encrypts stored access-key secrets comes from.

The key never lives beside the ciphertexts by default, so a copy of the state (a backup, a
shared volume, a database dump) reveals no secret. In order:

1. `secret_key` (`MODELHOST_SECRET_KEY`): a Fernet key given by the environment, e.g. from
   a secret manager; several gateways with different homes share access keys this way;
2. `secret_key_file` (`MODELHOST_SECRET_KEY_FILE`): a file holding one, which must exist;
3. a home made before this rule, with `<home>/auth/master.key`: that key, with a warning
   recommending the move (the ciphertexts in that home need it, so it is not replaced);
4. otherwise the user's own key file, `$XDG_CONFIG_HOME/modelhost/master.key`
   (`~/.config/modelhost/master.key`), created 0600 in a 0700 directory on first use.

Every key file must be private: one that its group or others may read is refused, as ssh
refuses such a private key. `secret_key_previous` lists older keys that still decrypt
(MultiFernet) while records are re-encrypted under the current one (key rotation).
"""

from __future__ import annotations

import binascii
import logging
import os
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from modelhost.errors import UnsafeConfiguration
from modelhost.settings import Settings

log = logging.getLogger(__name__)

MAKE_KEY = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


@dataclass(frozen=True)
class MasterKeyConfig:
    """The settings that say where the master key comes from (see the module docstring)."""

    key: SecretStr | None = None
    key_file: Path | None = None
    previous: tuple[SecretStr, ...] = ()
    default_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MasterKeyConfig:
        return cls(
            key=settings.secret_key,
            key_file=settings.secret_key_file,
            previous=tuple(settings.secret_key_previous),
            default_file=settings.default_secret_key_file,
        )


@dataclass(frozen=True)
class MasterKey:
    """The cipher: encrypts under the current key, decrypts under it or a previous one."""

    cipher: MultiFernet
    current: Fernet
    source: str  # where the current key came from, for messages (never the key itself)

    def decrypts_with_current(self, token: bytes) -> bool:
        try:
            self.current.decrypt(token)
        except InvalidToken:
            return False
        return True


def load(config: MasterKeyConfig, legacy_file: Path, create: bool) -> MasterKey:
    """The master key `config` names; `create`: make the default key file if missing
    (otherwise FileNotFoundError, as there can be no secret encrypted under it yet)."""
    if config.key is not None:
        source = "MODELHOST_SECRET_KEY"
        current = _fernet(config.key.get_secret_value().encode(), source)
    elif config.key_file is not None:
        source = f"secret_key_file {config.key_file}"
        if not config.key_file.exists():
            raise UnsafeConfiguration(
                f"{source} does not exist. Make a key with `{MAKE_KEY} > {config.key_file}; "
                f"chmod 600 {config.key_file}` (the same file on every gateway)."
            )
        current = _fernet(read_private(config.key_file), source)
    elif legacy_file.exists():
        source = f"{legacy_file} (inside the state directory)"
        _warn_legacy(legacy_file, config.default_file)
        current = _fernet(read_private(legacy_file), source)
    else:
        path = config.default_file or Settings().default_secret_key_file
        source = f"{path}"
        if not path.exists():
            if not create:
                raise FileNotFoundError(path)
            create_private(path, Fernet.generate_key())
        current = _fernet(read_private(path), source)
    previous = [
        _fernet(k.get_secret_value().encode(), f"MODELHOST_SECRET_KEY_PREVIOUS[{i}]")
        for i, k in enumerate(config.previous)
    ]
    return MasterKey(MultiFernet([current, *previous]), current, source)


def check(master: MasterKey, tokens: Mapping[str, str], where: Path) -> None:
    """Refuse a master key that decrypts none of the active keys' secrets (started with
    the wrong key: every request would fail as an unknown key); warn about some."""
    failed = []
    for key_id, token in tokens.items():
        try:
            master.cipher.decrypt(token.encode())
        except InvalidToken:
            failed.append(key_id)
    if tokens and len(failed) == len(tokens):
        raise UnsafeConfiguration(
            f"The master key from {master.source} decrypts none of the {len(tokens)} active "
            f"access keys in {where}: they were encrypted under another key. Start with the "
            "key they were created with (MODELHOST_SECRET_KEY or MODELHOST_SECRET_KEY_FILE; "
            "while rotating, the old one in MODELHOST_SECRET_KEY_PREVIOUS)."
        )
    if failed:
        log.warning(
            "the master key from %s does not decrypt access keys %s: they will be refused "
            "as unknown until started with the key they were created with",
            master.source,
            ", ".join(failed),
        )


def read_private(path: Path) -> bytes:
    """The key in `path`, refusing a file its group or others may read."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UnsafeConfiguration(
            f"{path} is readable by others (mode {mode:04o}): a master key file must be "
            f"private. Run `chmod 600 {path}`."
        )
    return path.read_bytes().strip()


def create_private(path: Path, data: bytes) -> None:
    """Write `path` with mode 0600 unless it exists; the first of concurrent writers wins
    (a hard link never replaces a file), and the others read its key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _fernet(raw: bytes, source: str) -> Fernet:
    try:
        return Fernet(raw)
    except (ValueError, binascii.Error) as exc:
        raise UnsafeConfiguration(
            f"{source} is not a Fernet key (32 url-safe base64-encoded bytes). Make one "
            f"with `{MAKE_KEY}`."
        ) from exc


_warned: set[Path] = set()


def _warn_legacy(legacy_file: Path, default_file: Path | None) -> None:
    if legacy_file in _warned:
        return
    _warned.add(legacy_file)
    target = default_file or Path("~/.config/modelhost/master.key")
    log.warning(
        "the master key that encrypts access-key secrets is %s, beside the ciphertexts: a "
        "copy of the state directory carries both. Move it out: `mv %s %s` (if no key is "
        "there yet), or move it anywhere private and set MODELHOST_SECRET_KEY_FILE to it",
        legacy_file,
        legacy_file,
        target,
    )
