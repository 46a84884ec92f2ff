"""Start and stop a real `modelhost serve` process on a free loopback port.

Used by modelhost's own tests, the demo and the benchmarks; users can use it the same way
to test their SageMaker code against modelhost.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from modelhost.fleet.local import free_port
from modelhost.gateway.auth import client as auth_client
from modelhost.settings import Settings

# Credentials of the servers this process started, by URL, so `boto3_clients(url)` signs
# with the right admin key without the caller passing it around.
_STARTED: dict[str, tuple[str, str]] = {}

# Where a server started without a database URL keeps its metadata: None for SQLite in
# its home, else a function from the home to a database URL (modelhost's own tests, run
# with `--metadata-store postgresql`, give each home its own database on one PostgreSQL).
_database_for_home: Callable[[Path], str] | None = None


def use_metadata_store(database_for_home: Callable[[Path], str] | None) -> None:
    """Make every server started from now on without `MODELHOST_DATABASE_URL` in its
    `env` keep its metadata at `database_for_home(home)` (None: SQLite in the home again).
    A home's restarts must map to the same database for the state to survive them."""
    global _database_for_home
    _database_for_home = database_for_home


class ModelhostServer:
    """A `modelhost serve` child process. `restart()` keeps the port and the home."""

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.home = Path(home)
        self.port = port or free_port()
        self.env = dict(env or {})
        self.log_path = log_path or self.home / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.credentials: tuple[str, str] = auth_client.PLACEHOLDER

    @property
    def tls_cert_file(self) -> str | None:
        return self.env.get("MODELHOST_TLS_CERT_FILE")

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert_file else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> ModelhostServer:
        self.home.mkdir(parents=True, exist_ok=True)
        if _database_for_home is not None and "MODELHOST_DATABASE_URL" not in self.env:
            self.env["MODELHOST_DATABASE_URL"] = _database_for_home(self.home)
        # On purpose the caller's whole environment, as `modelhost serve` run from the same
        # shell gets it (settings, AWS credentials for S3); the gateway keeps it from its
        # instances (fleet/environment.py).
        env = dict(os.environ)
        env.update(self.env)
        env["MODELHOST_HOME"] = str(self.home)
        argv = [
            sys.executable,
            "-m",
            "modelhost",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"modelhost serve exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                context = (
                    ssl.create_default_context(cafile=self.tls_cert_file)
                    if self.tls_cert_file
                    else None
                )
                with urllib.request.urlopen(self.url + "/ping", timeout=1, context=context) as resp:
                    if resp.status == 200:
                        found = auth_client.bootstrap_credentials(
                            self.home,
                            self.env.get("MODELHOST_DATABASE_URL"),
                            self._key_settings(),
                        )
                        self.credentials = found or auth_client.PLACEHOLDER
                        _STARTED[self.url] = self.credentials
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"modelhost serve did not answer /ping in {timeout_s} s")

    @property
    def metadata_url(self) -> str:
        """The server's metadata database (known once it has started): its
        `MODELHOST_DATABASE_URL`, else the SQLite file in its home."""
        return Settings(
            home=self.home, database_url=self.env.get("MODELHOST_DATABASE_URL")
        ).metadata_url

    def _key_settings(self) -> Settings:
        """The server's master-key settings: its `env` over this process's environment."""
        given: dict[str, Any] = {}
        if "MODELHOST_SECRET_KEY" in self.env:
            given["secret_key"] = self.env["MODELHOST_SECRET_KEY"]
        if "MODELHOST_SECRET_KEY_FILE" in self.env:
            given["secret_key_file"] = Path(self.env["MODELHOST_SECRET_KEY_FILE"])
        return Settings(home=self.home, **given)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 45.0) -> None:
        """SIGTERM (the gateway drains and stops its instances), then SIGKILL (its
        instances then notice their parent is gone and exit by themselves)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> ModelhostServer:
        self.stop()
        return self.start()

    def clients(self, **config: Any) -> tuple[Any, Any]:
        """boto3 `sagemaker` and `sagemaker-runtime` clients pointed at this server."""
        return boto3_clients(self.url, credentials=self.credentials, **config)

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client of any service modelhost speaks (`cloudwatch`, ...) for this server."""
        return boto3_client(service, self.url, credentials=self.credentials, **config)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A signed call to the native `/api/...` API; raises HTTPError on 4xx/5xx."""
        return auth_client.call_native(self.url, method, path, self.credentials, body)

    def signed(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> urllib.request.Request:
        """A urllib request to this server, signed with its admin key."""
        return auth_client.signed_request(self.url + path, method, self.credentials, body, headers)

    def __enter__(self) -> ModelhostServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def credentials_for(url: str) -> tuple[str, str]:
    """The key to sign with for `url`: a server this process started, else the local one's."""
    return _STARTED.get(url) or auth_client.resolve()


def signed_call(url: str, method: str, path: str, body: bytes | None = None) -> Any:
    """A signed urllib request for `url + path` (for tests that speak raw HTTP)."""
    headers = {"content-type": "application/json"} if body is not None else None
    return auth_client.signed_request(url + path, method, credentials_for(url), body, headers)


def boto3_client(
    service: str, url: str, credentials: tuple[str, str] | None = None, **config: Any
) -> Any:
    """One boto3 client of `service` for `url`, signed as `boto3_clients` signs."""
    import boto3
    from botocore.config import Config

    key_id, secret = credentials or _STARTED.get(url) or auth_client.resolve()
    kwargs: dict[str, Any] = {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": key_id,
        "aws_secret_access_key": secret,
    }
    if config:
        kwargs["config"] = Config(**config)
    return boto3.client(service, **kwargs)


def boto3_clients(
    url: str, credentials: tuple[str, str] | None = None, **config: Any
) -> tuple[Any, Any]:
    """boto3 `sagemaker` and `sagemaker-runtime` clients for `url`, signing with
    `credentials`, else the key of a server this process started at `url`, else the key
    `modelhost credentials` would print (see `gateway.auth.client.resolve`)."""
    return (
        boto3_client("sagemaker", url, credentials, **config),
        boto3_client("sagemaker-runtime", url, credentials, **config),
    )
