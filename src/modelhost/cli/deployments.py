"""Deployment commands: alarms, events, shadow report and promote, bandit routing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from modelhost.cli.common import Target, target_options


@click.group()
def alarms() -> None:
    """Alarms over endpoint metrics (used by AutoRollbackConfiguration)."""


@alarms.command("put")
@click.argument("name")
@click.option("--endpoint", required=True, help="EndpointName dimension.")
@click.option("--variant", default=None, help="VariantName dimension (default: all).")
@click.option(
    "--metric",
    required=True,
    help="Invocations, Invocation4XXErrors, Invocation5XXErrors, ModelLatency or OverheadLatency.",
)
@click.option("--statistic", default="Sum", show_default=True)
@click.option("--period", type=int, default=60, show_default=True, help="Seconds.")
@click.option("--evaluation-periods", type=int, default=1, show_default=True)
@click.option("--datapoints-to-alarm", type=int, default=None)
@click.option("--threshold", type=float, required=True)
@click.option("--comparison", default="GreaterThanOrEqualToThreshold", show_default=True)
@click.option("--treat-missing-data", default="missing", show_default=True)
@target_options
def alarms_put(
    name: str,
    endpoint: str,
    variant: str | None,
    metric: str,
    statistic: str,
    period: int,
    evaluation_periods: int,
    datapoints_to_alarm: int | None,
    threshold: float,
    comparison: str,
    treat_missing_data: str,
    target: Target,
) -> None:
    """Create or replace alarm NAME."""
    dims = [{"Name": "EndpointName", "Value": endpoint}]
    if variant:
        dims.append({"Name": "VariantName", "Value": variant})
    body: dict[str, Any] = {
        "MetricName": metric,
        "Dimensions": dims,
        "Statistic": statistic,
        "Period": period,
        "EvaluationPeriods": evaluation_periods,
        "Threshold": threshold,
        "ComparisonOperator": comparison,
        "TreatMissingData": treat_missing_data,
    }
    if datapoints_to_alarm is not None:
        body["DatapointsToAlarm"] = datapoints_to_alarm
    out = target.native("PUT", f"/api/alarms/{name}", body)
    click.echo(f"alarm {name}: {out['StateValue']}")


@alarms.command("list")
@target_options
def alarms_list(target: Target) -> None:
    """Alarms and their states."""
    for alarm in target.native("GET", "/api/alarms")["MetricAlarms"]:
        dims = ",".join(d["Value"] for d in alarm["Dimensions"])
        click.echo(
            f"{alarm['AlarmName']}  {alarm['StateValue']}  {alarm['MetricName']}"
            f"({dims}) {alarm.get('Statistic') or alarm.get('ExtendedStatistic')} "
            f"{alarm['ComparisonOperator']} "
            f"{alarm['Threshold']:g}"
        )


@alarms.command("show")
@click.argument("name")
@target_options
def alarms_show(name: str, target: Target) -> None:
    """Alarm NAME with its state history."""
    import json

    click.echo(json.dumps(target.native("GET", f"/api/alarms/{name}"), indent=2))


@alarms.command("delete")
@click.argument("name")
@target_options
def alarms_delete(name: str, target: Target) -> None:
    """Delete alarm NAME."""
    target.native("DELETE", f"/api/alarms/{name}")
    click.echo(f"alarm {name}: deleted")


@click.command()
@click.argument("name")
@target_options
def events(name: str, target: Target) -> None:
    """Deployment events of endpoint NAME (traffic steps, baking, rollbacks)."""
    import datetime as dt

    for event in target.native("GET", f"/api/endpoints/{name}/events")["Events"]:
        when = dt.datetime.fromtimestamp(event["Time"]).strftime("%H:%M:%S")
        click.echo(f"{when}  {event['Status']:<17} {event['Message']}")


@click.command("shadow-report")
@click.argument("name")
@click.option(
    "--tolerance",
    type=float,
    default=1e-6,
    show_default=True,
    help="Numbers closer than this count as agreeing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON report.")
@target_options
def shadow_report(name: str, tolerance: float, as_json: bool, target: Target) -> None:
    """Compare endpoint NAME's shadow answers with production's: agreement, latency, errors."""
    import json
    import urllib.parse

    query = urllib.parse.urlencode({"tolerance": repr(tolerance)})
    out = target.native("GET", f"/api/endpoints/{name}/shadow-report?{query}")
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if not out["ShadowVariants"]:
        click.echo(f"endpoint {name}: no shadow captures yet")

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    def us(v: float | None) -> str:
        return "-" if v is None else f"{v / 1000:.2f} ms"

    for v in out["ShadowVariants"]:
        click.echo(f"shadow variant {v['VariantName']}: {v['Pairs']} pairs")
        click.echo(f"  exact agreement    {pct(v['ExactAgreement'])}")
        click.echo(
            f"  numeric agreement  {pct(v['NumericAgreement'])} within {tolerance:g} "
            f"({v['NumericCompared']} compared, {v['NumericUnparsed']} not numeric)"
        )
        for side in ("Production", "Shadow"):
            s = v[side]
            click.echo(
                f"  {side.lower():<10} p50 {us(s['LatencyP50Us'])}  p99 {us(s['LatencyP99Us'])}"
                f"  errors {pct(s['ErrorRate'])}"
            )


@click.command("promote-shadow")
@click.argument("name")
@target_options
def promote_shadow(name: str, target: Target) -> None:
    """Make endpoint NAME's shadow model the production model (a normal UpdateEndpoint)."""
    out = target.native("POST", f"/api/endpoints/{name}/promote-shadow", {})
    click.echo(
        f"endpoint {name}: updating to {out['EndpointConfigName']} "
        "(wait for InService: modelhost endpoints)"
    )


@click.command()
@click.argument("name")
@click.option(
    "--strategy",
    type=click.Choice(["thompson", "epsilon-greedy"]),
    default=None,
    help="Turn bandit routing on with this strategy.",
)
@click.option("--min-exploration", type=float, default=None, help="Least share per variant.")
@click.option("--epsilon", type=float, default=None, help="Exploration share (epsilon-greedy).")
@click.option("--reward-window", type=float, default=None, help="Seconds a reward may arrive.")
@click.option("--off", is_flag=True, help="Back to the endpoint config's weights.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@target_options
def routing(
    name: str,
    strategy: str | None,
    min_exploration: float | None,
    epsilon: float | None,
    reward_window: float | None,
    off: bool,
    as_json: bool,
    target: Target,
) -> None:
    """Show or set endpoint NAME's routing: configured weights, or a multi-armed bandit."""
    import json

    path = f"/api/endpoints/{name}/routing"
    if off:
        out = target.native("DELETE", path)
    elif strategy or min_exploration is not None or epsilon is not None or reward_window:
        body: dict[str, Any] = {
            "Strategy": "EpsilonGreedy" if strategy == "epsilon-greedy" else "ThompsonSampling"
        }
        for key, value in (
            ("MinExplorationShare", min_exploration),
            ("Epsilon", epsilon),
            ("RewardWindowSeconds", reward_window),
        ):
            if value is not None:
                body[key] = value
        out = target.native("PUT", path, body)
    else:
        out = target.native("GET", path)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if not out.get("RoutingConfig"):
        click.echo(f"endpoint {name}: configured weights (no bandit)")
        return
    config = out["RoutingConfig"]
    click.echo(
        f"endpoint {name}: {config['Strategy']} (min exploration "
        f"{config['MinExplorationShare']:.0%}, reward window {config['RewardWindowSeconds']:g} s)"
    )
    weights = out.get("CurrentWeights") or {}
    stats = {v["VariantName"]: v for v in out.get("Variants", [])}
    for variant in sorted(set(weights) | set(stats)):
        s = stats.get(variant, {})
        mean = s.get("MeanReward")
        click.echo(
            f"  {variant:<20} weight {weights.get(variant, 0.0):6.1%}  "
            f"invocations {s.get('Invocations', 0):>7}  rewards {s.get('Rewards', 0):>7}  "
            f"mean {'-' if mean is None else f'{mean:.3f}'}"
        )
    outcomes = out.get("RewardOutcomes") or {}
    click.echo("  rewards: " + ", ".join(f"{k} {v}" for k, v in outcomes.items()))


@click.command()
@click.argument("name")
@click.argument("inference_id", required=False)
@click.argument("value", type=float, required=False)
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON Lines of {InferenceId, Reward}, sent in batches.",
)
@target_options
def reward(
    name: str, inference_id: str | None, value: float | None, path: Path | None, target: Target
) -> None:
    """Report a reward in [0, 1] for an invocation of endpoint NAME (bandit routing)."""
    import json

    if path is not None:
        items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    elif inference_id is not None and value is not None:
        items = [{"InferenceId": inference_id, "Reward": value}]
    else:
        raise click.UsageError("give INFERENCE_ID and VALUE, or --file")
    totals: dict[str, int] = {}
    for start in range(0, len(items), 1000):
        out = target.native(
            "POST",
            f"/api/endpoints/{name}/rewards",
            {"Rewards": items[start : start + 1000]},
        )
        for outcome, count in out["Counts"].items():
            totals[outcome] = totals.get(outcome, 0) + count
    click.echo(", ".join(f"{k} {v}" for k, v in totals.items()))
