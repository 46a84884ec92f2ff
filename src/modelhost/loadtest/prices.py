"""The price model: dated, editable price tables and the cost arithmetic, as pure functions.

A table is a TOML file (`prices/*.toml` in the package; `--prices FILE` for your own): its
name, date, currency, region and source, `hours_per_month`, $ per instance-hour for
`realtime`, `batch` and `async`, and `serverless` rates per GB-second and per request. Two
ship: `default` (recent us-east-1 figures) and `seeds-2021` (the seeds' worked example).

CostPerHour and CostPerInference follow Inference Recommender's definitions: the hourly
price of the endpoint's instances, and that price divided by the invocations an hour at
the measured throughput.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelhost.errors import ValidationException

PRICES_DIR = Path(__file__).resolve().parent / "prices"
BUNDLED = ("default", "seeds-2021")
OPTIONS = ("realtime", "batch", "async")
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)


@dataclass(frozen=True)
class PriceTable:
    """One dated price table; `hourly[option][instance_type]` in `currency` per hour."""

    name: str
    date: str
    currency: str
    region: str
    source: str
    hours_per_month: float
    hourly: dict[str, dict[str, float]] = field(default_factory=dict)
    serverless_gb_second: float = 0.0
    serverless_per_request: float = 0.0

    def describe(self) -> dict[str, Any]:
        """Where the figures come from, for every answer that uses them."""
        return {
            "Name": self.name,
            "Date": self.date,
            "Currency": self.currency,
            "Region": self.region,
            "Source": self.source,
        }

    def instance_types(self, option: str = "realtime") -> list[str]:
        return sorted(self.hourly.get(option, {}))


def _number(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not raw >= 0:
        raise ValidationException(f"price table: {where} must be a number >= 0.")
    return float(raw)


def parse_prices(raw: dict[str, Any], origin: str = "price table") -> PriceTable:
    """A table from its TOML document, checked member by member."""
    for key in ("name", "date", "source"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ValidationException(f"{origin}: `{key}` is required (text).")
    hourly = {
        option: {
            str(t): _number(p, f"[{option}] {t}") for t, p in dict(raw.get(option, {})).items()
        }
        for option in OPTIONS
    }
    serverless = dict(raw.get("serverless", {}))
    return PriceTable(
        name=raw["name"],
        date=str(raw["date"]),
        currency=str(raw.get("currency", "USD")),
        region=str(raw.get("region", "")),
        source=raw["source"],
        hours_per_month=_number(raw.get("hours_per_month", 720), "hours_per_month") or 720.0,
        hourly=hourly,
        serverless_gb_second=_number(serverless.get("gb_second", 0.0), "serverless.gb_second"),
        serverless_per_request=_number(
            serverless.get("per_request", 0.0), "serverless.per_request"
        ),
    )


def load_prices(path_or_name: str | Path | None = None) -> PriceTable:
    """A bundled table by name (`default`, `seeds-2021`) or a TOML file; `default` if None."""
    text = str(path_or_name) if path_or_name is not None else "default"
    path = PRICES_DIR / f"{text}.toml" if text in BUNDLED else Path(text)
    if not path.is_file():
        raise ValidationException(
            f"prices: {text} is neither a file nor a bundled table ({', '.join(BUNDLED)})."
        )
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValidationException(f"prices: {path} is not valid TOML: {exc}") from exc
    return parse_prices(raw, str(path))


def hourly_price(table: PriceTable, instance_type: str, option: str = "realtime") -> float:
    """$ per instance-hour of `instance_type` for `option` (realtime, batch, async)."""
    prices = table.hourly.get(option, {})
    if instance_type not in prices:
        known = ", ".join(sorted(prices)) or "none"
        raise ValidationException(
            f"InstanceType {instance_type} has no {option} price in table {table.name} "
            f"(priced: {known}); add it to a copy of the table and pass --prices."
        )
    return prices[instance_type]


def cost_per_hour(
    table: PriceTable, instance_type: str, instance_count: int = 1, option: str = "realtime"
) -> float:
    """CostPerHour: what the endpoint's instances cost an hour."""
    return hourly_price(table, instance_type, option) * instance_count


def cost_per_inference(hourly_cost: float, invocations_per_second: float) -> float:
    """CostPerInference: CostPerHour over the invocations an hour at the measured throughput."""
    if not invocations_per_second > 0:
        raise ValidationException("CostPerInference needs a measured throughput > 0.")
    return hourly_cost / (invocations_per_second * 3600.0)


def monthly_realtime(table: PriceTable, instance_type: str, instance_count: int = 1) -> float:
    """An always-on endpoint for a month."""
    return cost_per_hour(table, instance_type, instance_count) * table.hours_per_month


def monthly_batch(
    table: PriceTable,
    instance_type: str,
    minutes_per_run: float,
    runs_per_month: float,
    instance_count: int = 1,
) -> float:
    """Batch transform jobs: instances billed for the jobs' duration only."""
    hours = minutes_per_run / 60.0 * runs_per_month
    return cost_per_hour(table, instance_type, instance_count, "batch") * hours


def monthly_async(
    table: PriceTable, instance_type: str, busy_hours_per_month: float, min_instances: int = 0
) -> float:
    """An async endpoint that scales to `min_instances` when its queue is empty."""
    price = hourly_price(table, instance_type, "async")
    idle = max(table.hours_per_month - busy_hours_per_month, 0.0)
    return price * (busy_hours_per_month + idle * min_instances)


def monthly_serverless(
    table: PriceTable, memory_mb: int, requests_per_month: float, duration_ms: float
) -> float:
    """Serverless: compute per GB-second of each request's duration, plus a per-request fee."""
    if memory_mb not in SERVERLESS_MEMORY_MB:
        raise ValidationException(
            f"MemorySizeInMB must be one of {', '.join(map(str, SERVERLESS_MEMORY_MB))}."
        )
    gb_seconds = requests_per_month * duration_ms / 1000.0 * memory_mb / 1024.0
    return (
        gb_seconds * table.serverless_gb_second + requests_per_month * table.serverless_per_request
    )


def instances_for(peak_rps: float, capacity_rps: float | None) -> int:
    """Instances to serve `peak_rps` when one serves `capacity_rps` (1 when unmeasured)."""
    if capacity_rps is None or capacity_rps <= 0 or peak_rps <= 0:
        return 1
    return max(1, math.ceil(peak_rps / capacity_rps))
