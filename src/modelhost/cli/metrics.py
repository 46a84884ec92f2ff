"""`modelhost metrics ENDPOINT`: an endpoint's CloudWatch metrics as a table with sparklines,
read through the CloudWatch API (the same calls a boto3 user makes)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import click

from modelhost.cli.common import Target, fail, target_options

BARS = "▁▂▃▄▅▆▇█"
# The overview: (metric, statistic) per variant.
OVERVIEW = (
    ("Invocations", "Sum"),
    ("Invocation4XXErrors", "Sum"),
    ("Invocation5XXErrors", "Sum"),
    ("ModelLatency", "Average"),
    ("ModelLatency", "p99"),
    ("OverheadLatency", "Average"),
)
DETAIL = ("SampleCount", "Sum", "Average", "Minimum", "Maximum", "p50", "p99")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> int:
    """`90s`, `10m`, `3h`, `1d` (or plain seconds) → seconds."""
    found = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if found is None or int(found.group(1)) == 0:
        raise click.BadParameter(f"{text!r}: use a duration like 90s, 10m, 3h or 1d.")
    return int(found.group(1)) * _UNITS[found.group(2) or "s"]


def period_for(since_s: int, points: int = 30) -> int:
    """A CloudWatch period (1, 5, 10, 30 s or whole minutes) giving about `points` rows."""
    raw = max(since_s // points, 1)
    for p in (1, 5, 10, 30, 60):
        if raw <= p:
            return p
    return (raw + 59) // 60 * 60


def sparkline(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = (high - low) or 1.0
    return "".join(
        " " if v is None else BARS[min(int((v - low) / span * (len(BARS) - 1)), len(BARS) - 1)]
        for v in values
    )


def _series(
    cw: Any, endpoint: str, variant: str, metric: str, stats: tuple[str, ...], window: Any
) -> dict[float, dict[str, float]]:
    plain = [s for s in stats if not s.startswith("p")]
    extended = [s for s in stats if s.startswith("p")]
    kwargs: dict[str, Any] = {"Statistics": plain} if plain else {}
    if extended:
        kwargs["ExtendedStatistics"] = extended
    got = cw.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName=metric,
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        **window,
        **kwargs,
    )
    out: dict[float, dict[str, float]] = {}
    for p in got["Datapoints"]:
        row = {s: p[s] for s in plain if s in p}
        row.update(p.get("ExtendedStatistics", {}))
        out[p["Timestamp"].timestamp()] = row
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value == int(value) and abs(value) < 1e12 else f"{value:.4g}"


@click.command()
@click.argument("endpoint")
@click.option("--metric", default=None, help="One AWS/SageMaker metric, per period in detail.")
@click.option("--since", default="10m", show_default=True, help="How far back: 90s, 10m, 3h, 1d.")
@target_options
def metrics(endpoint: str, metric: str | None, since: str, target: Target) -> None:
    """Print ENDPOINT's metrics per variant: a table and a sparkline per metric."""
    since_s = parse_since(since)
    period = period_for(since_s)
    end = dt.datetime.now(dt.UTC)
    window = {"StartTime": end - dt.timedelta(seconds=since_s), "EndTime": end, "Period": period}
    stamps = [end.timestamp() - since_s + i * period for i in range(since_s // period)]
    try:
        cw = target.client("cloudwatch")
        listed = cw.list_metrics(
            Namespace="AWS/SageMaker",
            MetricName="Invocations",
            Dimensions=[{"Name": "EndpointName", "Value": endpoint}],
        )["Metrics"]
        variants = sorted(
            {d["Value"] for m in listed for d in m["Dimensions"] if d["Name"] == "VariantName"}
        )
        if not variants:
            click.echo(f"no metrics for endpoint {endpoint} yet (invoke it first)")
            return
        click.echo(f"{endpoint}: last {since} in {period} s periods")
        for variant in variants:
            click.echo(f"\n{variant}")
            if metric is None:
                _overview(cw, endpoint, variant, window, stamps, period)
            else:
                _detail(cw, endpoint, variant, metric, window)
    except Exception as exc:
        fail(exc)


def _slot(series: dict[float, dict[str, float]], stamps: list[float], period: int) -> list[Any]:
    return [next((row for t, row in series.items() if s <= t < s + period), None) for s in stamps]


def _overview(
    cw: Any, endpoint: str, variant: str, window: Any, stamps: list[float], period: int
) -> None:
    click.echo(f"  {'metric':<28}{'total/last':>12}  trend")
    for metric, stat in OVERVIEW:
        series = _series(cw, endpoint, variant, metric, (stat,), window)
        values = [row.get(stat) if row else None for row in _slot(series, stamps, period)]
        present = [v for v in values if v is not None]
        summary = sum(present) if stat == "Sum" else (present[-1] if present else None)
        click.echo(f"  {metric + ' ' + stat:<28}{_fmt(summary):>12}  {sparkline(values)}")


def _detail(cw: Any, endpoint: str, variant: str, metric: str, window: Any) -> None:
    series = _series(cw, endpoint, variant, metric, DETAIL, window)
    click.echo("  " + f"{'time (UTC)':<10}" + "".join(f"{s:>12}" for s in DETAIL))
    for t in sorted(series):
        when = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M:%S")
        click.echo("  " + f"{when:<10}" + "".join(f"{_fmt(series[t].get(s)):>12}" for s in DETAIL))
    averages = [series[t].get("Average") for t in sorted(series)]
    click.echo(f"  Average {sparkline(averages)}")
