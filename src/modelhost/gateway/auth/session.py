"""Dashboard sessions: a signed cookie standing for an access key, for a browser.

A browser cannot sign requests with SigV4, so the dashboard's sign-in form checks an access
key id and its secret against the `KeyStore` once and answers a cookie
`<key id>.<expiry>.<HMAC-SHA256>` (HttpOnly, SameSite=Strict, Path=/, Max-Age). The HMAC
key is `auth/session.key` (0600, created on first use), so restarting the server keeps
sessions and deleting the file ends all of them. Each request re-checks that the key is
still active, so revoking a key signs its sessions out. The guard accepts the cookie only
for the dashboard's own read-only routes (`actions.DASHBOARD_ROUTES`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from modelhost.gateway.auth.keys import KeyStore, _write_private, auth_dir

COOKIE = "modelhost_session"


def is_loopback(client: tuple[str, int] | list[object] | None) -> bool:
    """Whether an ASGI `client` (host, port) is this machine (127.0.0.0/8, ::1)."""
    if not client:
        return False
    try:
        return ipaddress.ip_address(str(client[0])).is_loopback
    except ValueError:
        return False


def cookie_value(raw_headers: list[tuple[bytes, bytes]], name: str = COOKIE) -> str | None:
    """The value of cookie `name` in the request's Cookie headers, if any."""
    for key, value in raw_headers:
        if key != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return v
    return None


class Sessions:
    """Issues and verifies session cookies; `clock` is injectable."""

    def __init__(self, home: Path, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.path = auth_dir(home) / "session.key"
        self.ttl_s = ttl_s
        self.clock = clock
        self._secret: bytes | None = None

    def _key(self) -> bytes:
        if self._secret is None:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _write_private(self.path, secrets.token_bytes(32))
            self._secret = self.path.read_bytes()
        return self._secret

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self._key(), payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, access_key_id: str) -> str:
        expiry = int(self.clock() + self.ttl_s)
        payload = f"{access_key_id}.{expiry}"
        return f"{payload}.{self._mac(payload)}"

    def verify(self, value: str | None) -> str | None:
        """The access key id of a valid, unexpired cookie value, else None."""
        if not value or value.count(".") != 2:
            return None
        key_id, expiry, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(f"{key_id}.{expiry}")):
            return None
        if not expiry.isdigit() or int(expiry) <= self.clock():
            return None
        return key_id

    def sign_in(self, keys: KeyStore, access_key_id: str, secret: str) -> str | None:
        """A cookie value for a correct, active key and secret; None otherwise."""
        keys.load()
        found = keys.active(access_key_id.strip())
        if found is None or not hmac.compare_digest(found[1].encode(), secret.strip().encode()):
            return None
        return self.issue(found[0].access_key_id)

    def set_cookie(self, value: str, secure: bool) -> str:
        flags = "; Secure" if secure else ""
        return (
            f"{COOKIE}={value}; Max-Age={int(self.ttl_s)}; Path=/; HttpOnly; SameSite=Strict{flags}"
        )

    @staticmethod
    def clear_cookie() -> str:
        return f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"
