"""Access keys: id, role, endpoint patterns and the secret, encrypted at rest.

SigV4 verification needs the secret itself (the server recomputes the HMAC), so secrets
cannot be stored as one-way hashes the way passwords are. They are encrypted with Fernet
(AES-128-CBC + HMAC-SHA256) under a master key that does not live in the home directory
(`master_key.py`: the `secret_key` setting, a `secret_key_file`, or the user's own key
file); `auth/keys.json` (0600) holds only ciphertexts, so a copy of it (a backup, a shared
volume) does not reveal any secret without the key. Where the key records live
is a `KeyRecords`: `keys.json` by default (`KeyFile`), the metadata database's
`access_keys` table when several gateways share it (gateway/auth/key_table.py). A secret is
returned once,
when its key is created; the only exception is the bootstrap admin key, which
`modelhost credentials` decrypts for the local user who owns the home directory.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from cryptography.fernet import InvalidToken

from modelhost.errors import UnsafeConfiguration, ValidationException
from modelhost.gateway.auth import master_key
from modelhost.gateway.auth.master_key import MasterKey, MasterKeyConfig
from modelhost.gateway.auth.policy import Role
from modelhost.settings import Settings

_ID_ALPHABET = string.ascii_uppercase + string.digits
_PATTERN_CHARS = set(string.ascii_letters + string.digits + "-*?,[]! ")
MAX_PATTERN_CHARS = 256


class KeyStatus:
    ACTIVE = "Active"
    REVOKED = "Revoked"


@dataclass
class AccessKey:
    """One access key as stored (secret encrypted) and as described (secret omitted)."""

    access_key_id: str
    role: str
    endpoints: str
    created_s: float
    status: str
    bootstrap: bool
    secret_token: str  # Fernet ciphertext of the secret access key

    def describe(self) -> dict[str, object]:
        return {
            "AccessKeyId": self.access_key_id,
            "Role": self.role,
            "Endpoints": self.endpoints,
            "CreationTime": self.created_s,
            "Status": self.status,
            "Bootstrap": self.bootstrap,
        }


def auth_dir(home: Path) -> Path:
    return home / "auth"


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 from the first byte (no window with wider mode)."""
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def validate_grant(role: str, endpoints: str) -> Role:
    try:
        parsed = Role(role)
    except ValueError as exc:
        raise ValidationException(
            f"1 validation error detected: Value '{role}' at 'Role' failed to satisfy "
            "constraint: Member must satisfy enum value set: [admin, deployer, invoker]"
        ) from exc
    if not endpoints or len(endpoints) > MAX_PATTERN_CHARS or not set(endpoints) <= _PATTERN_CHARS:
        raise ValidationException(
            f"1 validation error detected: Value '{endpoints[:80]}' at 'Endpoints' failed to "
            "satisfy constraint: comma-separated glob patterns of letters, digits, '-', '*', "
            f"'?', '[]', '!', at most {MAX_PATTERN_CHARS} characters"
        )
    return parsed


class KeyRecords(Protocol):
    """Where the key records are kept."""

    def read(self) -> list[AccessKey] | None:
        """Every key, or None when nothing changed since the last read."""
        ...

    def write(self, changed: AccessKey, every: list[AccessKey]) -> None:
        """Store `changed` (new or updated); `every` is all keys including it."""
        ...


class KeyFile:
    """`auth/keys.json` (0600): the records of one home, reread when its mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loaded_mtime: float | None = None

    def read(self) -> list[AccessKey] | None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._loaded_mtime = None
            return []
        if mtime == self._loaded_mtime:
            return None
        rows = json.loads(self.path.read_text())
        self._loaded_mtime = mtime
        return [AccessKey(**row) for row in rows]

    def write(self, changed: AccessKey, every: list[AccessKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(self.path, json.dumps([asdict(k) for k in every], indent=1).encode())
        self._loaded_mtime = self.path.stat().st_mtime


class KeyStore:
    """The access keys of one home directory; decrypted secrets are cached in memory."""

    def __init__(
        self, home: Path, settings: Settings | None = None, records: KeyRecords | None = None
    ) -> None:
        self.dir = auth_dir(home)
        self.path = self.dir / "keys.json"
        # Only homes made before the master key moved out have one here (master_key.py).
        self.key_path = self.dir / "master.key"
        self.master_config = MasterKeyConfig.from_settings(settings or Settings(home=home))
        self.records: KeyRecords = records if records is not None else KeyFile(self.path)
        self._lock = threading.Lock()
        self._master: MasterKey | None = None
        self._keys: dict[str, AccessKey] = {}
        self._secrets: dict[str, str] = {}

    # --- files ------------------------------------------------------------------------

    def _cipher(self, create: bool) -> MasterKey:
        if self._master is None:
            if create:
                self.dir.mkdir(parents=True, exist_ok=True)
                os.chmod(self.dir, 0o700)
            self._master = master_key.load(self.master_config, self.key_path, create)
        return self._master

    def check_master_key(self) -> None:
        """At start: refuse a master key that decrypts none of the active secrets, and
        re-encrypt under the current key those only a previous key decrypts (rotation)."""
        with self._lock:
            self.load()
            active = {
                k.access_key_id: k.secret_token
                for k in self._keys.values()
                if k.status == KeyStatus.ACTIVE
            }
            if not active:
                return
            try:
                master = self._cipher(create=False)
            except FileNotFoundError as exc:
                raise UnsafeConfiguration(
                    f"{self.path} holds access keys but there is no master key at {exc}: "
                    "start with the key they were created with (MODELHOST_SECRET_KEY or "
                    "MODELHOST_SECRET_KEY_FILE)."
                ) from exc
            master_key.check(master, active, self.path)
            stale = [
                k
                for k in self._keys.values()
                if not master.decrypts_with_current(k.secret_token.encode())
            ]
            rotated = []
            for key in stale:
                try:
                    key.secret_token = master.cipher.rotate(key.secret_token.encode()).decode()
                    rotated.append(key)
                except InvalidToken:
                    continue
            for key in rotated:
                self._save(key)

    def load(self) -> None:
        """(Re)read the records; cheap when they have not changed. Decrypted secrets are
        kept for the keys that are still active with the same ciphertext."""
        rows = self.records.read()
        if rows is None:
            return
        old = self._keys
        keys = {k.access_key_id: k for k in rows}
        self._secrets = {
            key_id: secret
            for key_id, secret in self._secrets.items()
            if (k := keys.get(key_id)) is not None
            and k.status == KeyStatus.ACTIVE
            and key_id in old
            and old[key_id].secret_token == k.secret_token
        }
        self._keys = keys

    def refresh(self) -> None:
        """`load`, serialised with create and revoke (the gateway's key loop calls it)."""
        with self._lock:
            self.load()

    def _save(self, changed: AccessKey) -> None:
        self.records.write(changed, list(self._keys.values()))

    def record_url(self, url: str) -> None:
        """Remember where this home's server listens, for `modelhost credentials`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_private(self.dir / "url", url.encode())

    def recorded_url(self) -> str | None:
        try:
            return (self.dir / "url").read_text().strip() or None
        except OSError:
            return None

    # --- operations -------------------------------------------------------------------

    def create(self, role: str, endpoints: str = "*", bootstrap: bool = False) -> tuple[str, str]:
        """A new key: (access key id, secret). The secret is never returned again."""
        validate_grant(role, endpoints)
        with self._lock:
            self.load()
            cipher = self._cipher(create=True)
            key_id = "MH" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(18))
            secret = secrets.token_urlsafe(30)
            key = self._keys[key_id] = AccessKey(
                access_key_id=key_id,
                role=role,
                endpoints=endpoints,
                created_s=time.time(),
                status=KeyStatus.ACTIVE,
                bootstrap=bootstrap,
                secret_token=cipher.cipher.encrypt(secret.encode()).decode(),
            )
            self._save(key)
            self._secrets[key_id] = secret
            return key_id, secret

    def revoke(self, key_id: str) -> AccessKey | None:
        with self._lock:
            self.load()
            key = self._keys.get(key_id)
            if key is None:
                return None
            admins = [
                k
                for k in self._keys.values()
                if k.role == Role.ADMIN and k.status == KeyStatus.ACTIVE
            ]
            if key.status == KeyStatus.ACTIVE and key.role == Role.ADMIN and len(admins) == 1:
                raise ValidationException(
                    f"{key_id} is the last active admin key; create another admin key before "
                    "revoking it."
                )
            key.status = KeyStatus.REVOKED
            self._secrets.pop(key_id, None)
            self._save(key)
            return key

    def list(self) -> list[AccessKey]:
        with self._lock:
            self.load()
            return sorted(self._keys.values(), key=lambda k: k.created_s)

    def active(self, key_id: str) -> tuple[AccessKey, str] | None:
        """The active key and its secret, or None if unknown or revoked."""
        key = self._keys.get(key_id)
        if key is None or key.status != KeyStatus.ACTIVE:
            return None
        secret = self._secrets.get(key_id)
        if secret is None:
            try:
                token = key.secret_token.encode()
                secret = self._cipher(create=False).cipher.decrypt(token).decode()
            except (InvalidToken, FileNotFoundError):
                return None
            self._secrets[key_id] = secret
        return key, secret

    def ensure_admin(self) -> tuple[str, str] | None:
        """Create the bootstrap admin key if no active admin key exists; return it if new.
        Records shared by several gateways count only the admin keys this home's master key
        decrypts: a gateway given another master key gets an admin key of its own."""
        self.load()
        shared = not isinstance(self.records, KeyFile)
        if any(
            k.role == Role.ADMIN and k.status == KeyStatus.ACTIVE
            and (not shared or self.active(k.access_key_id) is not None)
            for k in self._keys.values()
        ):  # fmt: skip
            return None
        return self.create(Role.ADMIN, "*", bootstrap=True)

    def bootstrap_credentials(self) -> tuple[str, str] | None:
        """The active bootstrap admin key with its secret (for the local CLI), if any."""
        try:
            self.load()
        except (OSError, ValueError):
            return None
        for key in self._keys.values():
            if key.bootstrap and key.status == KeyStatus.ACTIVE:
                found = self.active(key.access_key_id)
                if found is not None:
                    return key.access_key_id, found[1]
        return None
