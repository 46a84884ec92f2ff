"""The one settings object. Every knob is read here, from `MODELHOST_*` env vars or flags.

CLI flags map onto these fields one to one (as uvicorn's `Config` does); nothing else in
the code base reads the environment for modelhost configuration.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Configuration for a modelhost server and the instances it starts."""

    model_config = SettingsConfigDict(env_prefix="MODELHOST_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path("~/.modelhost").expanduser(),
        description="State directory: metadata database, artifact cache, logs.",
    )
    host: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(default=8080, description="Port the gateway listens on.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the metadata store; default SQLite in home."
    )
    region: str = Field(default="us-east-1", description="Region written into ARNs.")
    account_id: str = Field(default="123456789012", description="Account id written into ARNs.")
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint URL for s3:// artifacts (S3-compatible stores)."
    )
    invocation_timeout_s: float = Field(
        default=60.0,
        description="How long the gateway waits for an instance to answer an invocation.",
    )
    max_payload_bytes: int = Field(
        default=6 * MIB, description="Largest request and response body."
    )
    instance_startup_timeout_s: float = Field(
        default=240.0, description="How long a new instance may take to answer /ping with 200."
    )
    health_check_interval_s: float = Field(
        default=2.0, description="Period of instance health checks."
    )
    ping_timeout_s: float = Field(default=2.0, description="Timeout of one /ping.")
    unhealthy_threshold: int = Field(
        default=3, description="Consecutive failed pings before a live instance is replaced."
    )
    shutdown_grace_s: float = Field(
        default=30.0, description="Time between SIGTERM and SIGKILL when stopping an instance."
    )
    reconcile_interval_s: float = Field(default=1.0, description="Period of the control loop.")
    instance_threads: int = Field(
        default=1, description="Threads a built-in runtime uses for one predict (OMP_NUM_THREADS)."
    )
    log_level: str = Field(default="info", description="Log level of the gateway and instances.")
    model_cache_bytes: int = Field(
        default=0,
        description="Memory the loaded models of one multi-model instance may take together; "
        "0 = half of the instance type's memory, at most half of this machine's.",
    )
    model_busy_outstanding: int = Field(
        default=8,
        description="Multi-model routing: in-flight requests at which an instance holding the "
        "target model counts as overloaded, so the least-loaded instance loads it too.",
    )

    @property
    def metadata_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'modelhost.db'}"

    @property
    def artifact_cache_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"
