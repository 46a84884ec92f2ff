"""`modelhost advise`: which hosting option, and its monthly cost next to the alternatives.

The advisor is pure arithmetic over a price table and the user's numbers, so the command
runs locally (no server state is read; `--prices FILE` is a file on this machine). With
`--url` (or MODELHOST_URL) and a bundled table it asks that server's `GET /api/advise`
instead, which gives the same answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from modelhost.cli.common import Target, fail, target_options
from modelhost.errors import ModelhostError

# Option name → wire name (advisor.WIRE); None values are left to the advisor's defaults.
_OPTIONS = {
    "live": "Live",
    "requests_per_day": "RequestsPerDay",
    "peak_to_average": "PeakToAverage",
    "payload_mb": "PayloadMB",
    "processing_s": "ProcessingS",
    "tolerates_cold_start": "ToleratesColdStart",
    "models": "Models",
    "containers": "Containers",
    "model_size_mb": "ModelSizeMB",
    "instance_type": "InstanceType",
    "capacity_rps": "CapacityRPS",
    "batch_minutes_per_run": "BatchMinutesPerRun",
    "batch_runs_per_day": "BatchRunsPerDay",
    "batch_instance_type": "BatchInstanceType",
    "serverless_memory_mb": "ServerlessMemoryMB",
}


def _recommended(target: Target, ref: str) -> dict[str, Any]:
    """InstanceType, CapacityRPS and ProcessingS from recommendation N of a job."""
    job, _, number = ref.rpartition("/")
    if not job or not number.isdigit() or int(number) < 1:
        raise click.BadParameter("use JOB/N, e.g. churn-rec/1", param_hint="--from-recommendation")
    try:
        got = target.client("sagemaker").describe_inference_recommendations_job(JobName=job)
    except Exception as exc:
        fail(exc)
    recs = got.get("InferenceRecommendations") or []
    if int(number) > len(recs):
        raise click.ClickException(f"job {job} has {len(recs)} recommendation(s)")
    rec = recs[int(number) - 1]
    return {
        "InstanceType": rec["EndpointConfiguration"]["InstanceType"],
        "CapacityRPS": rec["Metrics"]["MaxInvocations"] / 60.0,
        "ProcessingS": rec["Metrics"]["ModelLatency"] / 1000.0,
    }


def _query(raw: dict[str, Any], prices: str) -> str:
    from urllib.parse import urlencode

    text = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw.items()}
    return urlencode({**text, "Prices": prices})


def _money(value: float, currency: str) -> str:
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{symbol}{value:,.2f}"


def render(advice: dict[str, Any]) -> str:
    """The advice as text: the path through the tree, the pick, the alternatives."""
    rec = advice["Recommendation"]
    currency = rec["Currency"]
    lines = ["decision path:"]
    lines += [f"  {p['Question']:<46}{p['Answer']:<5}({p['Because']})" for p in advice["Path"]]
    size = f" on {rec['InstanceCount']} × {rec['InstanceType']}" if rec["InstanceType"] else ""
    lines += [
        "",
        f"recommended: {rec['Option']}, {_money(rec['MonthlyCost'], currency)}/month{size}",
        f"  {rec['Note']}",
        "",
        f"  {'alternative':<24}{'per month':>14}  {'fits':<6}note",
    ]
    for alt in advice["Alternatives"]:
        lines.append(
            f"  {alt['Option']:<24}{_money(alt['MonthlyCost'], currency):>14}  "
            f"{'yes' if alt['Fits'] else 'no':<6}{alt['Note']}"
        )
    prices = advice["Prices"]
    lines += [
        "",
        f"capacity: {advice['Capacity']}",
        f"prices: {prices['Name']} ({prices['Date']}, {prices['Region']}, {prices['Currency']})",
    ]
    return "\n".join(lines)


@click.command()
@click.option("--live/--no-live", default=None, help="Predictions needed while callers wait?")
@click.option("--requests-per-day", type=float, default=None, help="[default: 10000]")
@click.option("--peak-to-average", type=float, default=None, help="Traffic's peak/average.")
@click.option("--payload-mb", type=float, default=None, help="Request payload size in MB.")
@click.option("--processing-s", type=float, default=None, help="Seconds per request.")
@click.option("--tolerates-cold-start/--no-cold-start", default=None, help="Cold starts OK?")
@click.option("--models", type=int, default=None, help="Number of models.")
@click.option("--containers", type=int, default=None, help="Different containers (frameworks).")
@click.option("--model-size-mb", type=float, default=None, help="Size of one model in MB.")
@click.option("--instance-type", default=None, help="[default: ml.m5.2xlarge]")
@click.option("--capacity-rps", type=float, default=None, help="Requests/s one instance serves.")
@click.option("--batch-minutes-per-run", type=float, default=None, help="A batch job's minutes.")
@click.option("--batch-runs-per-day", type=float, default=None, help="Batch jobs a day.")
@click.option("--batch-instance-type", default=None, help="[default: --instance-type]")
@click.option("--serverless-memory-mb", type=int, default=None, help="1024 to 6144.")
@click.option(
    "--from-loadtest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A load test's results.json: measured capacity and processing time.",
)
@click.option(
    "--from-recommendation",
    default=None,
    metavar="JOB/N",
    help="Recommendation N of an inference recommendations job: its instance type, capacity "
    "and latency.",
)
@click.option("--prices", default=None, help="Price table: a TOML file, or default / seeds-2021.")
@click.option("--json", "as_json", is_flag=True, help="Print the advice as JSON.")
@target_options
def advise(
    from_loadtest: Path | None,
    from_recommendation: str | None,
    prices: str | None,
    as_json: bool,
    target: Target,
    **given: Any,
) -> None:
    """Recommend a hosting option, with its monthly cost next to the alternatives'."""
    from modelhost.loadtest.advisor import advise as run
    from modelhost.loadtest.advisor import capacity_from_result, parse_workload
    from modelhost.loadtest.prices import BUNDLED, load_prices

    raw = {_OPTIONS[k]: v for k, v in given.items() if v is not None}
    try:
        if from_loadtest is not None:
            measured = capacity_from_result(json.loads(from_loadtest.read_text()))
            raw = {**measured, **raw}
        if from_recommendation is not None:
            raw = {**_recommended(target, from_recommendation), **raw}
        if target.given_url and (prices or "default") in BUNDLED:
            advice = target.native("GET", "/api/advise?" + _query(raw, prices or "default"))
        else:
            advice = run(parse_workload(raw), load_prices(prices))
    except ModelhostError as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from exc
    click.echo(json.dumps(advice, indent=1) if as_json else render(advice))
