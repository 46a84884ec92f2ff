"""The cost advisor: which hosting option, and what it costs a month next to the others.

The seeds' decision tree, walked with the user's numbers (pure: no I/O, no clock):

1. Live predictions needed? no → batch transform.
2. Payload over 4 MB, or processing over 60 s? yes → asynchronous inference.
3. Tolerates a cold start? yes → serverless inference.
4. Several models (one framework)? → multi-model endpoint; several containers → a
   multi-container endpoint.
5. Fluctuating traffic? yes → real-time with autoscaling; no → real-time.

Every option is priced from the price table (prices.py) and, where known, the measured
capacity of one instance (a load test's requests per second), so the answer is the
recommended option with its monthly cost beside every alternative's, each marked with
whether it meets the workload's needs.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields
from typing import Any

from modelhost.errors import ValidationException
from modelhost.loadtest.prices import (
    PriceTable,
    instances_for,
    monthly_async,
    monthly_batch,
    monthly_realtime,
    monthly_serverless,
)
from modelhost.resources.instance_types import instance_memory_bytes

PAYLOAD_LIMIT_MB = 4.0
PROCESSING_LIMIT_S = 60.0
MAX_CONTAINERS = 15
FLUCTUATING_PEAK_TO_AVERAGE = 2.0


class HostingOption(enum.StrEnum):
    """The leaves of the decision tree."""

    BATCH = "batch-transform"
    ASYNC = "async"
    SERVERLESS = "serverless"
    MULTI_MODEL = "multi-model"
    MULTI_CONTAINER = "multi-container"
    REALTIME_AUTOSCALING = "real-time-autoscaling"
    REALTIME = "real-time"


@dataclass(frozen=True)
class Workload:
    """What the user knows about their traffic and models (wire names in `WIRE`)."""

    live: bool = True
    requests_per_day: float = 10_000.0
    peak_to_average: float = 1.0
    payload_mb: float = 0.01
    processing_s: float = 0.05
    tolerates_cold_start: bool = False
    models: int = 1
    containers: int = 1
    model_size_mb: float = 100.0
    instance_type: str = "ml.m5.2xlarge"
    capacity_rps: float | None = None
    batch_minutes_per_run: float | None = None
    batch_runs_per_day: float = 1.0
    batch_instance_type: str | None = None
    serverless_memory_mb: int = 2048

    @property
    def fluctuating(self) -> bool:
        return self.peak_to_average >= FLUCTUATING_PEAK_TO_AVERAGE

    def average_rps(self) -> float:
        return self.requests_per_day / 86_400.0

    def peak_rps(self) -> float:
        return self.average_rps() * max(self.peak_to_average, 1.0)


# Wire (CLI and /api/advise) name → field name.
WIRE = {
    "Live": "live",
    "RequestsPerDay": "requests_per_day",
    "PeakToAverage": "peak_to_average",
    "PayloadMB": "payload_mb",
    "ProcessingS": "processing_s",
    "ToleratesColdStart": "tolerates_cold_start",
    "Models": "models",
    "Containers": "containers",
    "ModelSizeMB": "model_size_mb",
    "InstanceType": "instance_type",
    "CapacityRPS": "capacity_rps",
    "BatchMinutesPerRun": "batch_minutes_per_run",
    "BatchRunsPerDay": "batch_runs_per_day",
    "BatchInstanceType": "batch_instance_type",
    "ServerlessMemoryMB": "serverless_memory_mb",
}


def _convert(name: str, value: Any, kind: str) -> Any:
    if value is None or value == "":
        if "None" in kind:
            return None
        raise ValidationException(f"{name} must not be empty.")
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise ValidationException(f"{name} must be true or false.")
    if kind.startswith("str"):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationException(f"{name} must be a number.") from exc
    if not math.isfinite(number) or number < 0:
        raise ValidationException(f"{name} must be a number >= 0.")
    if kind.startswith("int"):
        if number != int(number) or number < 1:
            raise ValidationException(f"{name} must be a whole number >= 1.")
        return int(number)
    return number


def parse_workload(raw: dict[str, Any]) -> Workload:
    """A workload from wire names (`RequestsPerDay`, `Live`…); unknown names are refused."""
    types = {f.name: str(f.type) for f in fields(Workload)}
    unknown = sorted(set(raw) - set(WIRE))
    if unknown:
        raise ValidationException(
            f"unknown member(s) {', '.join(unknown)}; known: {', '.join(sorted(WIRE))}."
        )
    values = {WIRE[k]: _convert(k, v, types[WIRE[k]]) for k, v in raw.items()}
    workload = Workload(**values)
    if workload.serverless_memory_mb % 1024 or not 1024 <= workload.serverless_memory_mb <= 6144:
        raise ValidationException("ServerlessMemoryMB must be 1024 to 6144, in steps of 1024.")
    return workload


def walk(w: Workload) -> tuple[HostingOption, list[dict[str, str]]]:
    """The decision tree: the leaf and the questions answered on the way."""
    path: list[dict[str, str]] = []

    def ask(question: str, answer: bool, because: str) -> bool:
        path.append({"Question": question, "Answer": "yes" if answer else "no", "Because": because})
        return answer

    if not ask("Live predictions needed?", w.live, f"Live={w.live}"):
        return HostingOption.BATCH, path
    big = w.payload_mb > PAYLOAD_LIMIT_MB or w.processing_s > PROCESSING_LIMIT_S
    because = f"payload {w.payload_mb:g} MB, processing {w.processing_s:g} s"
    if ask("Payload over 4 MB or processing over 60 s?", big, because):
        return HostingOption.ASYNC, path
    cold = f"ToleratesColdStart={w.tolerates_cold_start}"
    if ask("Tolerates a cold start?", w.tolerates_cold_start, cold):
        return HostingOption.SERVERLESS, path
    several = w.models > 1 or w.containers > 1
    because = f"{w.models} models, {w.containers} containers"
    if ask("Several models or containers?", several, because):
        if w.containers > 1:
            return HostingOption.MULTI_CONTAINER, path
        return HostingOption.MULTI_MODEL, path
    because = (
        f"peak/average {w.peak_to_average:g} (fluctuating from {FLUCTUATING_PEAK_TO_AVERAGE:g})"
    )
    if ask("Fluctuating traffic?", w.fluctuating, because):
        return HostingOption.REALTIME_AUTOSCALING, path
    return HostingOption.REALTIME, path


@dataclass(frozen=True)
class Priced:
    """One option's monthly cost, its size, whether it meets the workload's needs, and why."""

    option: HostingOption
    monthly_cost: float
    instance_type: str | None
    instance_count: int | None
    fits: bool
    note: str

    def to_wire(self, currency: str) -> dict[str, Any]:
        return {
            "Option": str(self.option),
            "MonthlyCost": round(self.monthly_cost, 2),
            "Currency": currency,
            "InstanceType": self.instance_type,
            "InstanceCount": self.instance_count,
            "Fits": self.fits,
            "Note": self.note,
        }


def _realtime_options(w: Workload, t: PriceTable) -> list[Priced]:
    per_endpoint_peak = w.peak_rps() / max(w.models, 1)
    fixed = instances_for(per_endpoint_peak, w.capacity_rps)
    scaled = instances_for(w.average_rps() / max(w.models, 1), w.capacity_rps)
    small = w.payload_mb <= PAYLOAD_LIMIT_MB and w.processing_s <= PROCESSING_LIMIT_S
    what = f"{w.models} endpoints, one per model" if w.models > 1 else "one endpoint"
    return [
        Priced(
            HostingOption.REALTIME,
            w.models * monthly_realtime(t, w.instance_type, fixed),
            w.instance_type,
            w.models * fixed,
            w.live and small,
            f"{what}, always on, sized for the peak ({fixed} instance(s) each)",
        ),
        Priced(
            HostingOption.REALTIME_AUTOSCALING,
            w.models * monthly_realtime(t, w.instance_type, scaled),
            w.instance_type,
            w.models * scaled,
            w.live and small,
            f"{what}, autoscaled: about {scaled} instance(s) each on average",
        ),
    ]


def _shared_options(w: Workload, t: PriceTable) -> list[Priced]:
    count = instances_for(w.peak_rps(), w.capacity_rps)
    small = w.payload_mb <= PAYLOAD_LIMIT_MB and w.processing_s <= PROCESSING_LIMIT_S
    out = []
    if w.models > 1:
        out.append(
            Priced(
                HostingOption.MULTI_MODEL,
                monthly_realtime(t, w.instance_type, count),
                w.instance_type,
                count,
                w.live and small and w.containers == 1,
                _multi_model_note(w),
            )
        )
    if w.containers > 1:
        out.append(
            Priced(
                HostingOption.MULTI_CONTAINER,
                monthly_realtime(t, w.instance_type, count),
                w.instance_type,
                count,
                w.live and small and w.containers <= MAX_CONTAINERS,
                f"one endpoint for {w.containers} containers (at most {MAX_CONTAINERS})",
            )
        )
    return out


def _multi_model_note(w: Workload) -> str:
    total_mb = w.models * w.model_size_mb
    memory = instance_memory_bytes(w.instance_type)
    note = f"one endpoint for {w.models} models ({total_mb:g} MB in all"
    if memory is not None and total_mb * 2**20 > memory / 2:
        # The model cache gets about half the instance's memory; the rest load on demand.
        return note + "; more than fits loaded at once: rarely used models load on demand)"
    return note + "; all stay loaded)"


def _on_demand_options(w: Workload, t: PriceTable) -> list[Priced]:
    days = t.hours_per_month / 24.0
    requests_per_month = w.requests_per_day * days
    busy_hours = requests_per_month * w.processing_s / 3600.0
    batch_type = w.batch_instance_type or w.instance_type
    minutes = w.batch_minutes_per_run
    if minutes is None:
        per_run = w.requests_per_day / max(w.batch_runs_per_day, 1e-9)
        seconds = per_run / w.capacity_rps if w.capacity_rps else per_run * w.processing_s
        minutes = max(seconds / 60.0, 1.0)
    small = w.payload_mb <= PAYLOAD_LIMIT_MB and w.processing_s <= PROCESSING_LIMIT_S
    # Scale to zero means a cold start on the next request; without that, one stays warm.
    warm = 0 if w.tolerates_cold_start else 1
    return [
        Priced(
            HostingOption.BATCH,
            monthly_batch(t, batch_type, minutes, w.batch_runs_per_day * days),
            batch_type,
            1,
            not w.live,
            f"{w.batch_runs_per_day:g} job(s) a day of {minutes:.3g} min; no live predictions",
        ),
        Priced(
            HostingOption.ASYNC,
            monthly_async(t, w.instance_type, busy_hours, warm),
            w.instance_type,
            warm or None,
            w.live and (not small or w.tolerates_cold_start),
            f"queued; the caller polls for the result; {busy_hours:.1f} busy instance-hours a "
            + ("month, scales to zero when idle" if not warm else "month, one instance kept warm"),
        ),
        Priced(
            HostingOption.SERVERLESS,
            monthly_serverless(
                t, w.serverless_memory_mb, requests_per_month, w.processing_s * 1000.0
            ),
            None,
            None,
            w.live and small and w.tolerates_cold_start,
            f"{w.serverless_memory_mb} MB, billed per request; cold starts after idle time",
        ),
    ]


def advise(w: Workload, table: PriceTable) -> dict[str, Any]:
    """The recommendation with its monthly cost, the decision path and every alternative."""
    leaf, path = walk(w)
    priced = _realtime_options(w, table) + _shared_options(w, table)
    priced += _on_demand_options(w, table)
    chosen = next(p for p in priced if p.option == leaf)
    others = sorted((p for p in priced if p.option != leaf), key=lambda p: p.monthly_cost)
    capacity = (
        f"{w.capacity_rps:g} requests/s per instance (measured)"
        if w.capacity_rps
        else "not measured: one instance per endpoint assumed; run `modelhost loadtest`"
    )
    return {
        "Recommendation": chosen.to_wire(table.currency),
        "Path": path,
        "Alternatives": [p.to_wire(table.currency) for p in others],
        "Workload": {wire: getattr(w, name) for wire, name in WIRE.items()},
        "Capacity": capacity,
        "Prices": table.describe(),
    }


def capacity_from_result(result: dict[str, Any]) -> dict[str, float]:
    """A load test's results.json → the workload's CapacityRPS and ProcessingS."""
    summary = result["Summary"]
    out = {"CapacityRPS": float(summary["RequestsPerSecond"])}
    p50 = summary.get("LatencyMs", {}).get("p50")
    if p50:
        out["ProcessingS"] = float(p50) / 1000.0
    return out
