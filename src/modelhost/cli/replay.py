"""`modelhost replay`: captured production traffic against a candidate model, before deploying it.

Reads data capture files (SageMaker's JSON Lines; a file, a folder or an `s3://` prefix,
`*.jsonl` under it), deploys the candidate on a temporary endpoint through the API, sends
every captured input, deletes the endpoint and prints the report (monitor/replay.py) as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from modelhost.cli.common import Target, fail, target_options


def _baseline(path: Path | None) -> list[float] | None:
    from modelhost.telemetry.shadow_report import parse_numbers

    if path is None:
        return None
    values = parse_numbers(path.read_bytes())
    if values is None:
        raise click.BadParameter(f"{path} holds no numbers", param_hint="--baseline")
    return values


@click.command()
@click.option(
    "--capture",
    "location",
    required=True,
    help="Data capture files: a .jsonl file, a folder or an s3:// prefix (read recursively).",
)
@click.option("--model", required=True, help="The candidate model (CreateModel name).")
@click.option(
    "--endpoint-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A CreateEndpointConfig request (JSON) for the temporary endpoint; its variants' "
    "ModelName becomes the candidate [default: one ml.m5.large instance].",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=1e-6,
    show_default=True,
    help="Numbers within this absolute difference agree.",
)
@click.option(
    "--baseline",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Baseline outputs (numbers: CSV, one per line or JSON) for the output-drift check.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to this file too.",
)
@target_options
def replay(
    target: Target,
    location: str,
    model: str,
    endpoint_config: Path | None,
    tolerance: float,
    baseline: Path | None,
    output: Path | None,
) -> None:
    """Replay captured traffic against MODEL on a temporary endpoint and compare the answers."""
    from botocore.exceptions import BotoCoreError, ClientError

    from modelhost.errors import ModelhostError
    from modelhost.monitor.replay import parse_captures
    from modelhost.monitor.replay_run import read_capture
    from modelhost.monitor.replay_run import replay as run

    try:
        files = read_capture(location, target.settings.s3_endpoint_url)
    except (ModelhostError, OSError) as exc:
        click.echo(f"error: cannot read the capture at {location}: {exc}", err=True)
        sys.exit(1)
    records, bad = parse_captures(files)
    if not records:
        click.echo(f"error: no capture records at {location} ({len(bad)} bad).", err=True)
        sys.exit(1)
    template: dict[str, Any] | None = None
    if endpoint_config is not None:
        try:
            template = json.loads(endpoint_config.read_text())
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--endpoint-config") from exc
        if not isinstance(template, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--endpoint-config")
    # The runtime does not retry: a failing answer is what the report counts, once.
    sm, rt = target.client("sagemaker"), target.client("sagemaker-runtime", max_attempts=0)
    try:
        report = run(sm, rt, model, records, bad, template, tolerance, _baseline(baseline))
    except (ClientError, BotoCoreError) as exc:
        fail(exc)
    text = json.dumps(report, indent=2)
    if output is not None:
        output.write_text(text + "\n")
    click.echo(text)
