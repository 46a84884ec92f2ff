"""The one settings object. Every knob is read here, from `MODELHOST_*` env vars or flags.

CLI flags map onto these fields one to one (as uvicorn's `Config` does); nothing else in
the gateway reads the environment. An instance reads its own, explicit environment
(`container/config.py`, prefix `MH_INSTANCE_`): it never inherits the gateway's
(`fleet/environment.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from modelhost.settings_background import MIB, BackgroundSettings

__all__ = ["MIB", "Settings"]


class Settings(BackgroundSettings):
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
    leader_poll_interval_s: float = Field(
        default=1.0,
        description="Several gateways on one PostgreSQL: how often one that does not lead "
        "tries to take the lead (the leader's death frees it at once).",
    )
    leader_keepalive_timeout_s: float = Field(
        default=3.0,
        description="Several gateways: the leader checks its lock's database connection "
        "every `leader_poll_interval_s`; when a check fails or takes longer than this, it "
        "steps down (stops the controller and the leader's loops) and follows again.",
    )
    advertise_url: str | None = Field(
        default=None,
        description="Several gateways: the URL the other gateways reach this one at when it "
        "leads (a follower sends serverless invocations there); default the listen address.",
    )
    routes_poll_interval_s: float = Field(
        default=1.0,
        description="Several gateways: how often a follower rereads the leader's routing "
        "snapshots when no LISTEN/NOTIFY signal came (the fallback).",
    )
    fleet: Literal["local", "ray"] = Field(
        default="local",
        description="Where instances run: 'local' (child processes of this gateway) or 'ray' "
        "(actors on the nodes of the Ray cluster at ray_address; modelhost[ray]).",
    )
    ray_address: str | None = Field(
        default=None,
        description="Address of the Ray cluster for fleet 'ray' (host:port of the head's GCS, "
        "as `ray start --head` prints it); unset: RAY_ADDRESS, else a local Ray.",
    )
    ray_resource_scale: float = Field(
        default=1.0,
        gt=0,
        description="Fleet 'ray': an instance asks Ray for its type's vCPUs and memory times "
        "this (e.g. 0.05 so several ml.m5.large fit on a small test node).",
    )
    ray_node_cache_dir: str | None = Field(
        default=None,
        description="Fleet 'ray': where each node caches artifacts (a path on the node, a "
        "subdirectory per node address); unset: modelhost-artifacts in its temp directory.",
    )
    ray_node_cache_bytes: int = Field(
        default=20 * 2**30,
        gt=0,
        description="Fleet 'ray': bytes of artifacts a node's cache keeps; adding one evicts "
        "the least recently used entries no instance on the node uses.",
    )
    ray_instance_logs: Literal["auto", "ship"] = Field(
        default="auto",
        description="Fleet 'ray': 'auto' lets an instance write its log file in logs_dir when "
        "its node sees that path, else ship its output to the gateway; 'ship' always ships.",
    )
    ray_log_buffer_bytes: int = Field(
        default=8 * 2**20,
        gt=0,
        description="Fleet 'ray': bytes of shipped instance output a node holds for the "
        "gateway; past it the oldest lines are dropped (and counted in the log).",
    )
    region: str = Field(default="us-east-1", description="Region written into ARNs.")
    account_id: str = Field(default="123456789012", description="Account id written into ARNs.")
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint URL for s3:// artifacts (S3-compatible stores)."
    )
    s3_region: str | None = Field(
        default=None,
        description="Region handed to instances that read s3:// themselves; default: region.",
    )
    s3_access_key_id: str | None = Field(
        default=None,
        description="Access key handed to instances that read s3:// themselves (instances "
        "never inherit the gateway's environment); unset: they get none.",
    )
    s3_secret_access_key: str | None = Field(
        default=None, description="Secret of s3_access_key_id."
    )
    invocation_timeout_s: float = Field(
        default=60.0,
        description="How long the gateway waits for an instance to answer an invocation.",
    )
    stream_max_duration_s: float = Field(
        default=900.0,
        ge=0,
        description="Longest a streamed answer (InvokeEndpointWithResponseStream) may take "
        "from asking the instance to its last part; then it ends with ModelStreamError "
        "(ModelInvocationTimeExceeded). 0: no limit.",
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
    instance_unix_sockets: bool = Field(
        default=True,
        description="Reach built-in instances on this machine over a Unix domain socket "
        "(they listen on their TCP port too); off: loopback TCP, as a user's own server.",
    )
    recommender_test_duration_s: float = Field(
        default=120.0,
        description="Length of each load test of a Default inference recommendations job.",
    )
    transform_keep_alive_s: float = Field(
        default=0.0,
        description="How long a finished transform job's instances wait for the next job "
        "with the same model and environment (0: every job starts its own).",
    )
    serverless_idle_s: float = Field(
        default=300.0,
        description="How long a serverless instance may sit idle before it stops (down to "
        "the variant's ProvisionedConcurrency; with none, the variant runs no instance).",
    )
    zygote: bool = Field(
        default=True,
        description="Start built-in-runtime instances (real-time, serverless, transform job, "
        "multi-model) by forking a warm process per runtime that has the framework imported "
        "already (an instance serves in ~0.1 s); off: a fresh interpreter per instance.",
    )
    instance_memory_limits: bool = Field(
        default=True,
        description="Limit each instance to its instance type's memory (ml.c5.xlarge: 8 GiB), "
        "as on SageMaker; off: only serverless MemorySizeInMB limits memory.",
    )
    log_level: str = Field(default="info", description="Log level of the gateway and instances.")
    prediction_store_url: str = Field(
        default="embedded",
        description="Prediction store backend: 'embedded' (SQLite file in home), "
        "'embedded:///path.db', 'redis://host:port/db', or "
        "'dynamodb://TABLE?endpoint_url=...&region=...'.",
    )
    # --- security (docs/security.md) ---
    auth_enabled: bool = Field(
        default=True,
        description="Require SigV4-signed requests from known access keys; off is allowed only "
        "on a loopback address.",
    )
    auth_clock_skew_s: float = Field(
        default=300.0, description="How far X-Amz-Date may be from the server's clock."
    )
    metrics_public: bool = Field(
        default=False,
        description="Serve /metrics to anyone; off (default, with auth on): a signed request "
        "from any valid key, or the metrics_token as a bearer token.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that reads /metrics without a signature (Prometheus sends it "
        "as `Authorization: Bearer ...`); unset: signed requests only.",
    )
    access_key_id: str | None = Field(
        default=None,
        description="Key the CLI and test helpers sign with; default: the bootstrap admin key "
        "in home.",
    )
    secret_access_key: str | None = Field(
        default=None, description="Secret of access_key_id (client side only)."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts stored access-key secrets (gateways sharing "
        "access keys need the same one); unset: secret_key_file, else a key file outside home.",
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="File holding the Fernet master key (mode 0600; one that others may read "
        "is refused); unset: $XDG_CONFIG_HOME/modelhost/master.key, created on first use.",
    )
    secret_key_previous: list[SecretStr] = Field(
        default_factory=list,
        description="Older master keys that still decrypt (key rotation); secrets are "
        "re-encrypted under the current key at start.",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate; with tls_key_file the gateway serves HTTPS."
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key for TLS.")
    dashboard_session_ttl_s: float = Field(
        default=12 * 3600.0,
        description="How long a dashboard sign-in lasts (the session cookie's Max-Age).",
    )
    max_header_bytes: int = Field(
        default=16 * 1024, description="Largest total size of a request's headers."
    )
    max_headers: int = Field(default=100, description="Most header fields in one request.")
    max_api_body_bytes: int = Field(
        default=MIB, description="Largest control-plane or native API request body."
    )
    max_json_depth: int = Field(default=32, description="Deepest nesting of a JSON request body.")
    max_concurrency: int = Field(
        default=1024,
        description="Most connections and requests the gateway serves at once; beyond it, 503.",
    )
    http_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A request head (request line and headers) must arrive within this long of "
        "the connection opening or of its first byte; otherwise 408 and the connection closes "
        "(slowloris).",
    )
    http_body_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="A request body must arrive whole within this long of its head; otherwise "
        "408 and the connection closes.",
    )
    http_keepalive_s: float = Field(
        default=75.0,
        gt=0,
        description="How long an idle kept-alive connection stays open between requests.",
    )
    http_fast_path: bool = Field(
        default=True,
        description="Serve plain InvokeEndpoint requests in the gateway's HTTP protocol, "
        "below ASGI (same checks and answers, less CPU per request); false sends every "
        "request through the ASGI application.",
    )
    artifact_max_unpacked_bytes: int = Field(
        default=20 * 1024 * MIB, description="Largest total size of an unpacked model archive."
    )
    artifact_max_ratio: float = Field(
        default=200.0, description="Largest unpacked/packed size ratio of a model archive."
    )
    artifact_max_members: int = Field(
        default=100_000, description="Most files and folders in a model archive."
    )
    artifact_cache_bytes: int = Field(
        default=20 * 2**30,
        gt=0,
        description="Bytes of unpacked artifacts the artifact cache (home/artifacts) keeps; "
        "adding one, and the periodic pass, evict the least recently used entries nothing uses.",
    )
    allowed_data_prefixes: list[str] = Field(
        default_factory=list,
        description="If set, ModelDataUrl and input locations must start with one of these "
        "(s3://bucket/prefix/, file:///dir/, /dir/).",
    )
    compile_tree_models: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="The compiled tier: instances compile the XGBoost, LightGBM and scikit-learn "
        "tree models they load to native code in the background and predict with it once its "
        "answers are the same bits. 'auto' does so where the machine has a C compiler and "
        "Treelite/TL2cgen (else says so once in the log), 'on' also where it must fail and logs "
        "why, 'off' never; true/false mean on/off. A model's Environment "
        "MH_INSTANCE_COMPILE_TREES wins.",
    )

    @field_validator("compile_tree_models", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        """`true`/`false` (the setting was a boolean before 'auto') mean on/off."""
        text = str(value).strip().lower()
        return {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}.get(
            text, text
        )

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
    # --- metric series (docs/metrics.md) ---

    @property
    def metadata_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'modelhost.db'}"

    @property
    def artifact_cache_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def prediction_store_path(self) -> Path:
        return self.home / "predictions.db"

    @property
    def metrics_db_path(self) -> Path:
        return self.home / "metrics.db"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def default_secret_key_file(self) -> Path:
        """The master key file when neither secret_key nor secret_key_file is set: the
        user's config directory, outside every state home."""
        return platformdirs.user_config_path("modelhost") / "master.key"

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        scheme = "https" if self.tls_cert_file else "http"
        return f"{scheme}://{host}:{self.port}"
