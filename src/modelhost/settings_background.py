"""The background loops' settings (metrics, scaling, capture, monitoring, logs, async
inference): a section of the one settings object (`modelhost.settings.Settings` inherits
it), kept in its own module so each stays small. Same `MODELHOST_*` variables and flags.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class BackgroundSettings(BaseSettings):
    """Settings of the loops that run beside the data plane."""

    model_config = SettingsConfigDict(env_prefix="MODELHOST_", extra="ignore")

    metrics_fine_retention_s: int = Field(
        default=3 * 3600, description="How long 1-second metric points are kept (CloudWatch: 3 h)."
    )
    metrics_rollup_period_s: int = Field(
        default=60, description="Period of the metric rollup tier (CloudWatch: 60 s)."
    )
    metrics_rollup_retention_s: int = Field(
        default=15 * 86400, description="How long rolled-up metric points are kept (15 days)."
    )
    metrics_max_series: int = Field(
        default=50_000,
        description="Most metric series kept; series past it are not recorded (bounds memory).",
    )
    metrics_flush_interval_s: float = Field(
        default=1.0,
        description="Period of writing metric points to metrics.db (a crash loses at most this "
        "much, plus the current minute of the rollup tier).",
    )
    artifact_cache_evict_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="Period of the leader's eviction pass over the artifact cache (and, with "
        "fleet 'ray', every node's cache): entries nothing uses any more go once the cache is "
        "over its budget, without waiting for the next fetch; 0: only when an entry is added.",
    )
    compiled_cache_bytes: int = Field(
        default=4 * 2**30,
        gt=0,
        description="Bytes of compiled tree models (the compiled tier: home/compiled, and each "
        "Ray node's own) kept; compiling one, and the periodic pass, evict the least recently "
        "used entries no instance uses (failed compiles count too).",
    )
    packages_cache_bytes: int = Field(
        default=10 * 2**30,
        gt=0,
        description="Bytes of script-mode requirements.txt installs (home/packages, and each "
        "Ray node's own) kept; an install, and the periodic pass, evict the least recently "
        "used installs no instance process has activated.",
    )
    instance_sample_interval_s: float = Field(
        default=10.0,
        description="Period of sampling each instance's CPU, memory and disk utilization, "
        "and of reading modelhost's instances' own stats (batching, compiled tier).",
    )
    # --- Application Auto Scaling (docs/autoscaling.md) ---
    scaling_period_s: float = Field(
        default=60.0,
        gt=0,
        description="How long one of Application Auto Scaling's minutes lasts: the evaluation "
        "period, one datapoint, and the unit cooldowns are scaled by (60: AWS's timing).",
    )
    # --- data capture and model monitoring (docs/monitor.md) ---
    capture_buffer_records: int = Field(
        default=10_000,
        description="Most sampled data-capture records waiting to be written; beyond it "
        "records are dropped and counted (DataCaptureRecordsDropped), requests never wait.",
    )
    capture_flush_interval_s: float = Field(
        default=1.0,
        description="Period of writing buffered data-capture records (one file per endpoint, "
        "variant and hour at each flush).",
    )
    monitoring_hour_s: float = Field(
        default=3600.0,
        description="Length of an hour for monitoring schedules' cron expressions and analysis "
        "windows (shorter in tests, so hourly schedules run every few seconds).",
    )
    # --- instance logs as CloudWatch Logs (docs/logs.md) ---
    logs_retention_s: float = Field(
        default=14 * 86_400.0,
        description="Age after which instance log events are dropped (and idle instance log "
        "files emptied).",
    )
    logs_max_bytes: int = Field(
        default=512 * MIB,
        description="Most bytes of log messages kept in logs.db; beyond it the oldest go first.",
    )
    logs_poll_interval_s: float = Field(
        default=1.0,
        description="How often the gateway indexes what instances wrote to their log files "
        "(every CloudWatch Logs read indexes first too).",
    )

    # --- asynchronous inference (docs/async.md) ---
    async_lease_s: float = Field(
        default=30.0,
        description="How long a worker's lease on an async request lasts without a heartbeat; "
        "a request whose worker died is run again after it.",
    )
    async_heartbeat_s: float = Field(
        default=5.0, description="How often a worker renews the leases of its async requests."
    )
    async_poll_interval_s: float = Field(
        default=0.2, description="How often idle async workers look for queued requests."
    )
    async_request_ttl_s: float = Field(
        default=21600.0,
        description="RequestTTLSeconds of an async request that gives none (SageMaker: 6 h).",
    )
    async_default_concurrency: int = Field(
        default=4,
        description="MaxConcurrentInvocationsPerInstance of an async endpoint whose config "
        "leaves it unset.",
    )
    async_webhook_attempts: int = Field(
        default=5,
        description="Attempts to deliver one async notification (webhook POST or SNS Publish), "
        "with exponential backoff between them.",
    )
    async_retention_s: float = Field(
        default=7 * 86400.0,
        description="How long finished async requests stay in the queue table (their "
        "InferenceId stays an idempotency key that long).",
    )
    sns_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint URL of the SNS service async notifications are published to "
        "(SNS-compatible servers); unset: AWS SNS in region.",
    )
