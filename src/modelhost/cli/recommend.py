"""`modelhost recommend`: inference recommendations jobs from the command line.

`create` starts a job through boto3 (CreateInferenceRecommendationsJob) and waits for it,
`describe` prints a job's recommendations and can write the Pareto chart, `deploy JOB/N`
deploys recommendation N's EndpointConfiguration as it is.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click

from modelhost.cli.common import Target, absolute_location, fail, target_options

ROLE = "arn:aws:iam::123456789012:role/modelhost"
_DONE = ("COMPLETED", "FAILED", "STOPPED")


@click.group()
def recommend() -> None:
    """Inference recommendations: which instance type, at what cost per inference."""


def _describe_raw(sm: Any, job: str) -> dict[str, Any]:
    """DescribeInferenceRecommendationsJob as the server sent it: boto3 drops modelhost's own
    members (ParetoOptimal, LatencyMs), which the table and the chart use."""
    raw: dict[str, Any] = {}

    def keep(http_response: Any, **_kwargs: Any) -> None:
        raw.update(json.loads(http_response.content or b"{}"))

    event = "after-call.sagemaker.DescribeInferenceRecommendationsJob"
    sm.meta.events.register(event, keep)
    try:
        sm.describe_inference_recommendations_job(JobName=job)
    finally:
        sm.meta.events.unregister(event, keep)
    return raw


def _table(job: dict[str, Any]) -> str:
    lines = [f"{job['JobName']}: {job['Status']}"]
    if job.get("FailureReason"):
        lines.append(f"  {job['FailureReason']}")
    recs = job.get("InferenceRecommendations") or []
    if recs:
        lines.append(
            f"  {'#':<3}{'instance type':<16}{'$/hour':>9}{'$/1M inferences':>17}"
            f"{'max inv/min':>13}{'p99 ms':>9}  pareto"
        )
    for n, rec in enumerate(recs, 1):
        m = rec["Metrics"]
        per_million = m.get("CostPerInference", float("nan")) * 1e6
        p99 = (rec.get("LatencyMs") or {}).get("p99")
        lines.append(
            f"  {n:<3}{rec['EndpointConfiguration']['InstanceType']:<16}"
            f"{m.get('CostPerHour', float('nan')):>9.3f}{per_million:>17.4f}"
            f"{m['MaxInvocations']:>13}{'-' if p99 is None else f'{p99:.1f}':>9}"
            f"  {'yes' if rec.get('ParetoOptimal') else ''}"
        )
    if recs and recs[0].get("Note"):
        lines.append(f"  note: {recs[0]['Note']}")
    return "\n".join(lines)


def _pareto_html(job: dict[str, Any]) -> str:
    from html import escape

    from modelhost.loadtest.charts import chart

    points = {}
    front = []
    for rec in job.get("InferenceRecommendations") or []:
        p99 = (rec.get("LatencyMs") or {}).get("p99")
        cost = rec["Metrics"].get("CostPerInference")
        if p99 is None or cost is None:
            continue
        label = rec["EndpointConfiguration"]["InstanceType"]
        points[label] = [(p99, cost * 1e6)]
        if rec.get("ParetoOptimal"):
            front.append((p99, cost * 1e6))
    series = {"Pareto front": sorted(front), **points}
    svg = chart(
        "Cost per 1M inferences ($) vs p99 latency",
        series,
        x_label="p99 ms",
        lines={"Pareto front"},
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(job['JobName'])}"
        f"</title></head><body><h1>{escape(job['JobName'])}</h1>{svg}"
        f"<pre>{escape(_table(job))}</pre></body></html>"
    )


@recommend.command("create")
@click.argument("model")
@click.option("--payloads", required=True, help="SamplePayloadUrl: a tar.gz of payload files.")
@click.option("--instance-type", "instance_types", multiple=True, help="Repeatable.")
@click.option("--phases", default=None, help="Advanced job: TrafficPattern Phases (JSON).")
@click.option("--max-p99-ms", type=int, default=None, help="ModelLatencyThresholds P99.")
@click.option("--content-type", default="text/csv", show_default=True)
@click.option("--name", "job", default=None, help="JobName [default: MODEL-rec-XXXX].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--wait/--no-wait", default=True, show_default=True)
@target_options
def create(
    model: str,
    payloads: str,
    instance_types: tuple[str, ...],
    phases: str | None,
    max_p99_ms: int | None,
    content_type: str,
    job: str | None,
    out: Path | None,
    wait: bool,
    target: Target,
) -> None:
    """Start an inference recommendations job for MODEL and wait for its recommendations."""
    job = job or f"{model[:50]}-rec-{uuid.uuid4().hex[:4]}"
    payloads = absolute_location(payloads)
    container: dict[str, Any] = {
        "PayloadConfig": {"SamplePayloadUrl": payloads, "SupportedContentTypes": [content_type]}
    }
    config: dict[str, Any] = {"ModelName": model, "ContainerConfig": container}
    kwargs: dict[str, Any] = {}
    if phases:
        config["EndpointConfigurations"] = [{"InstanceType": t} for t in instance_types]
        config["TrafficPattern"] = {"TrafficType": "PHASES", "Phases": json.loads(phases)}
    elif instance_types:
        container["SupportedInstanceTypes"] = list(instance_types)
    if max_p99_ms is not None:
        kwargs["StoppingConditions"] = {
            "ModelLatencyThresholds": [{"Percentile": "P99", "ValueInMilliseconds": max_p99_ms}]
        }
    sm = target.client("sagemaker")
    try:
        sm.create_inference_recommendations_job(
            JobName=job,
            JobType="Advanced" if phases else "Default",
            RoleArn=ROLE,
            InputConfig=config,
            **kwargs,
        )
        click.echo(f"job {job}: created")
        if wait:
            _wait(sm, job)
            _show(sm, job, out)
    except Exception as exc:
        fail(exc)


def _wait(sm: Any, job: str) -> None:
    seen = -1
    while True:
        got = sm.describe_inference_recommendations_job(JobName=job)
        steps = sm.list_inference_recommendations_job_steps(JobName=job)["Steps"]
        if len(steps) != seen:
            seen = len(steps)
            click.echo(f"job {job}: {got['Status']}, {seen} configuration(s) measured")
        if got["Status"] in _DONE:
            return
        time.sleep(1.0)


def _show(sm: Any, job: str, out: Path | None) -> None:
    raw = _describe_raw(sm, job)
    click.echo(_table(raw))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "recommendations.json").write_text(json.dumps(raw, indent=1))
        (out / "pareto.html").write_text(_pareto_html(raw))
        click.echo(f"pareto chart: {out / 'pareto.html'}")
    if raw.get("Status") != "COMPLETED":
        sys.exit(1)


@recommend.command("describe")
@click.argument("job")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
@target_options
def describe(job: str, out: Path | None, target: Target) -> None:
    """Print JOB's recommendations; with --out, write them and the Pareto chart."""
    try:
        _show(target.client("sagemaker"), job, out)
    except Exception as exc:
        fail(exc)


@recommend.command("deploy")
@click.argument("recommendation", metavar="JOB/N")
@click.option("--name", required=True, help="The new endpoint's name.")
@target_options
def deploy(recommendation: str, name: str, target: Target) -> None:
    """Deploy recommendation N of JOB (1 = the first listed) as endpoint NAME (the same as
    `modelhost deploy --from-recommendation JOB/N --name NAME`)."""
    deploy_recommendation(target, recommendation, name)


def deploy_recommendation(target: Target, recommendation: str, name: str) -> None:
    """Deploy recommendation N of JOB as endpoint NAME and wait for InService: its
    EndpointConfiguration with the job's model (a copy NAME when the recommendation sets
    environment parameters). Shared by `modelhost deploy --from-recommendation` and
    `modelhost recommend deploy`."""
    job, _, number = recommendation.rpartition("/")
    if not job or not number.isdigit() or int(number) < 1:
        raise click.BadParameter("use JOB/N, e.g. churn-rec/1", param_hint="JOB/N")
    sm = target.client("sagemaker")
    try:
        got = sm.describe_inference_recommendations_job(JobName=job)
        recs = got.get("InferenceRecommendations") or []
        if int(number) > len(recs):
            raise click.ClickException(f"job {job} has {len(recs)} recommendation(s)")
        chosen = recs[int(number) - 1]
        config = chosen["EndpointConfiguration"]
        variant = {k: config[k] for k in ("VariantName", "InstanceType", "InitialInstanceCount")}
        variant["ModelName"] = _model(sm, got["InputConfig"]["ModelName"], chosen, name)
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 600}
        )
        click.echo(f"endpoint {name}: InService ({variant['InstanceType']})")
    except click.ClickException:
        raise
    except Exception as exc:
        fail(exc)


def _model(sm: Any, model: str, recommendation: dict[str, Any], name: str) -> str:
    """The job's model, or a copy NAME with the recommendation's environment parameters."""
    params = (recommendation.get("ModelConfiguration") or {}).get("EnvironmentParameters")
    if not params:
        return model
    got = sm.describe_model(ModelName=model)
    container = got["PrimaryContainer"]
    env = {**(container.get("Environment") or {}), **{p["Key"]: p["Value"] for p in params}}
    kwargs = {"ExecutionRoleArn": got["ExecutionRoleArn"]} if got.get("ExecutionRoleArn") else {}
    sm.create_model(ModelName=name, PrimaryContainer={**container, "Environment": env}, **kwargs)
    return name
