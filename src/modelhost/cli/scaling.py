"""`modelhost scaling ENDPOINT`: an endpoint's scalable targets, policies, last activities
and instance-count history, read through the Application Auto Scaling and CloudWatch APIs
(the same calls a boto3 user makes)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from modelhost.cli.common import Target, fail, target_options
from modelhost.cli.metrics import parse_since, period_for, sparkline

COUNTS_NAMESPACE = "modelhost/Autoscaling"


def _policy_line(p: dict[str, Any]) -> str:
    if p["PolicyType"] == "TargetTrackingScaling":
        c = p["TargetTrackingScalingPolicyConfiguration"]
        metric = (c.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType") or (
            c["CustomizedMetricSpecification"]["MetricName"]
        )
        extra = " scale-in disabled" if c.get("DisableScaleIn") else ""
        return (
            f"{p['PolicyName']}: target tracking {metric} = {c['TargetValue']:g}, cooldowns "
            f"out {c.get('ScaleOutCooldown', 300)} s / in {c.get('ScaleInCooldown', 300)} s{extra}"
        )
    c = p["StepScalingPolicyConfiguration"]
    alarms = ", ".join(a["AlarmName"] for a in p.get("Alarms") or []) or "no alarm yet"
    steps = "; ".join(
        f"[{s.get('MetricIntervalLowerBound', '-inf')}, {s.get('MetricIntervalUpperBound', 'inf')})"
        f" {s['ScalingAdjustment']:+d}"
        for s in c.get("StepAdjustments") or []
    )
    return f"{p['PolicyName']}: step scaling {c.get('AdjustmentType')} {steps} (alarms: {alarms})"


def _history(cw: Any, endpoint: str, variant: str, since_s: int) -> str:
    period = period_for(since_s)
    end = dt.datetime.now(dt.UTC)
    got = cw.get_metric_statistics(
        Namespace=COUNTS_NAMESPACE,
        MetricName="CurrentInstanceCount",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        StartTime=end - dt.timedelta(seconds=since_s),
        EndTime=end,
        Period=period,
        Statistics=["Minimum", "Maximum"],
    )["Datapoints"]
    low = min((p["Minimum"] for p in got), default=None)
    by_time = {p["Timestamp"].timestamp(): p["Maximum"] for p in got}
    start = end.timestamp() - since_s
    values: list[float | None] = []
    for i in range(since_s // period):
        slot = start + i * period
        values.append(next((v for t, v in by_time.items() if slot <= t < slot + period), None))
    present = [v for v in values if v is not None]
    if not present:
        return "no instance-count datapoints yet"
    return f"{sparkline(values)}  min {low:g}, max {max(present):g}"


@click.command()
@click.argument("endpoint")
@click.option("--activities", "count", default=5, show_default=True, help="Activities shown.")
@click.option("--since", default="30m", show_default=True, help="Instance-count history span.")
@target_options
def scaling(endpoint: str, count: int, since: str, target: Target) -> None:
    """Show ENDPOINT's autoscaling: targets, policies, last activities, instance counts."""
    since_s = parse_since(since)
    try:
        aas = target.client("application-autoscaling")
        cw = target.client("cloudwatch")
        sm = target.client("sagemaker")
        found = [
            t
            for t in aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
            if t["ResourceId"].startswith(f"endpoint/{endpoint}/variant/")
        ]
        if not found:
            click.echo(f"no scalable target for endpoint {endpoint} (register_scalable_target)")
            return
        variants = {
            v["VariantName"]: v
            for v in sm.describe_endpoint(EndpointName=endpoint).get("ProductionVariants", [])
        }
        for t in found:
            _target(aas, cw, t, endpoint, count, since_s)
            v = variants.get(t["ResourceId"].split("/")[3], {})
            click.echo(
                f"  now: {v.get('CurrentInstanceCount', '-')} serving, "
                f"{v.get('DesiredInstanceCount', '-')} desired"
            )
    except Exception as exc:
        fail(exc)


def _target(aas: Any, cw: Any, t: dict[str, Any], endpoint: str, count: int, since_s: int) -> None:
    rid, dim = t["ResourceId"], t["ScalableDimension"]
    variant = rid.split("/")[3]
    suspended = [k for k, v in (t.get("SuspendedState") or {}).items() if v]
    click.echo(
        f"{rid}  {dim}  min {t['MinCapacity']} max {t['MaxCapacity']}"
        + (f"  suspended: {', '.join(suspended)}" if suspended else "")
    )
    policies = aas.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=rid, ScalableDimension=dim
    )["ScalingPolicies"]
    for p in policies:
        click.echo(f"  policy {_policy_line(p)}")
    actions = aas.describe_scheduled_actions(
        ServiceNamespace="sagemaker", ResourceId=rid, ScalableDimension=dim
    )["ScheduledActions"]
    for a in actions:
        bounds = a.get("ScalableTargetAction") or {}
        click.echo(
            f"  scheduled {a['ScheduledActionName']}: {a['Schedule']} "
            f"({a.get('Timezone') or 'UTC'}) min {bounds.get('MinCapacity', '-')} "
            f"max {bounds.get('MaxCapacity', '-')}"
        )
    done = aas.describe_scaling_activities(
        ServiceNamespace="sagemaker", ResourceId=rid, ScalableDimension=dim, MaxResults=count
    )["ScalingActivities"]
    click.echo("  activities (newest first):")
    for a in done or []:
        when = a["StartTime"].astimezone().strftime("%H:%M:%S")
        click.echo(f"    {when} {a['StatusCode']:<11} {a['Description']} ({a['Cause']})")
        if a.get("StatusCode") == "Failed":
            click.echo(f"             {a.get('StatusMessage', '')}")
    if not done:
        click.echo("    none yet")
    click.echo(f"  instances: {_history(cw, endpoint, variant, since_s)}")
