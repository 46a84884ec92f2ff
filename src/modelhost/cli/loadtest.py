"""`modelhost loadtest ENDPOINT`: a Locust load test of an endpoint, with a report.

The requests are signed boto3 `InvokeEndpoint` calls, so with `--aws` the same command
load-tests a real SageMaker endpoint (AWS's own credentials, endpoint and CloudWatch).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from modelhost.cli.common import Target, fail, target_options
from modelhost.cli.metrics import parse_since
from modelhost.errors import ModelhostError


def _phases(users: int, spawn_rate: float, duration: str, phases: str | None) -> Any:
    from modelhost.loadtest.spec import constant_phase, parse_phases

    if phases is None:
        return (constant_phase(users, spawn_rate, parse_since(duration)),)
    text = Path(phases[1:]).read_text() if phases.startswith("@") else phases
    return parse_phases(text)


@click.command()
@click.argument("endpoint")
@click.option(
    "--payload",
    "payload",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV or JSON Lines file; each request sends one random row.",
)
@click.option("--users", default=10, show_default=True, help="Concurrent users to reach.")
@click.option("--spawn-rate", default=10.0, show_default=True, help="Users started per second.")
@click.option("--duration", default="60s", show_default=True, help="How long: 30s, 5m, 1h.")
@click.option(
    "--phases",
    default=None,
    help="Stepped traffic instead of --users/--spawn-rate/--duration: a JSON list (or @FILE) "
    "of {InitialNumberOfUsers, SpawnRate (users per minute), DurationInSeconds}.",
)
@click.option("--content-type", default=None, help="[default: text/csv, or application/json]")
@click.option("--accept", default=None, help="Accept header of every request.")
@click.option(
    "--target-model-column",
    default=None,
    help="Multi-model endpoints: the column naming each row's model (e.g. State).",
)
@click.option(
    "--target-model-template",
    default="{}.tar.gz",
    show_default=True,
    help="TargetModel from the column's value.",
)
@click.option("--target-variant", default=None, help="Send every request to this variant.")
@click.option("--workers", default=0, show_default=True, help="Locust workers (distributed mode).")
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Results folder [default: ./loadtest-ENDPOINT-TIME].",
)
@click.option("--aws", is_flag=True, help="Test a real SageMaker endpoint (AWS credentials).")
@click.option("--region", default=None, help="AWS region with --aws [default: AWS's own].")
@click.option("--seed", default=None, type=int, help="Seed of the random row choice.")
@target_options
def loadtest(
    endpoint: str,
    payload: Path,
    users: int,
    spawn_rate: float,
    duration: str,
    phases: str | None,
    content_type: str | None,
    accept: str | None,
    target_model_column: str | None,
    target_model_template: str,
    target_variant: str | None,
    workers: int,
    out_dir: Path | None,
    aws: bool,
    region: str | None,
    seed: int | None,
    target: Target,
) -> None:
    """Load-test ENDPOINT with Locust; print a table, write JSON, CSV and an HTML report."""
    from modelhost.loadtest.report import table
    from modelhost.loadtest.run import load_test
    from modelhost.loadtest.spec import LoadSpec

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    out = (out_dir or Path(f"loadtest-{endpoint}-{stamp}")).resolve()
    try:
        spec = LoadSpec(
            endpoint=endpoint,
            phases=_phases(users, spawn_rate, duration, phases),
            payload_path=str(payload.resolve()),
            content_type=content_type,
            accept=accept,
            target_model_column=target_model_column,
            target_model_template=target_model_template,
            target_variant=target_variant,
            workers=max(workers, 0),
            seed=seed,
        )
        rows = _check_payloads(spec)
        cloudwatch = _connect(spec, target, aws, region)
        click.echo(f"load test of {endpoint}: {rows} payload rows; results in {out}")
        result = load_test(
            spec, out, cloudwatch=cloudwatch, echo=click.echo, period_s=60 if aws else 1
        )
    except ModelhostError as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from exc
    except Exception as exc:
        fail(exc)
    click.echo("")
    click.echo(table(result))
    if result.get("EndpointMetricsError"):
        click.echo(f"endpoint metrics not read: {result['EndpointMetricsError']}", err=True)
    click.echo(f"report: {result['Files']['html']}")


def _check_payloads(spec: Any) -> int:
    """Fail on a bad payload file here, not in the Locust process; the number of rows."""
    from modelhost.loadtest.payloads import load_payloads

    return len(
        load_payloads(
            spec.payload_path,
            content_type=spec.content_type,
            target_model_column=spec.target_model_column,
            target_model_template=spec.target_model_template,
        )
    )


def _connect(spec: Any, target: Target, aws: bool, region: str | None) -> Any:
    """Point the spec at modelhost (signed with the home's key) or at AWS; the CloudWatch
    client for the endpoint's metrics."""
    import boto3

    if aws:
        session = boto3.session.Session(region_name=region)
        spec.region = session.region_name or "us-east-1"
        return session.client("cloudwatch")
    spec.endpoint_url = target.url
    spec.region = target.settings.region
    spec.access_key_id, spec.secret_access_key = target.credentials()
    return target.client("cloudwatch")
