"""`modelhost logs`: an endpoint's or a transform job's instance logs, through the same
CloudWatch Logs API boto3's `logs` client calls (FilterLogEvents)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click

from modelhost.cli.common import Target, fail, target_options
from modelhost.telemetry.logs import TRANSFORM_GROUP, endpoint_group

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_SPAN_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
FOLLOW_INTERVAL_S = 1.0


def since_ms(text: str, now_s: float) -> int:
    """Epoch ms from `10m`, `2h`, `1d`, `90s`, `1w` before `now_s`, or an ISO time."""
    found = _SPAN.match(text.strip())
    if found:
        return int((now_s - float(found.group(1)) * _SPAN_S[found.group(2)]) * 1000)
    try:
        return int(datetime.fromisoformat(text.strip()).timestamp() * 1000)
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r}: use a span (30s, 10m, 2h, 1d, 1w) or an ISO time (2026-12-06T09:00)."
        ) from exc


def format_event(event: dict[str, Any], show_stream: bool) -> str:
    """`2026-12-06 09:40:01.250 AllTraffic/i-0123 message` (local time)."""
    moment = datetime.fromtimestamp(event["timestamp"] / 1000).isoformat(" ", "milliseconds")
    stream = f" {event['logStreamName']}" if show_stream else ""
    return f"{moment}{stream} {event['message']}"


def _events(client: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    paginator = client.get_paginator("filter_log_events")
    for page in paginator.paginate(**request):
        yield from page["events"]


@click.command()
@click.argument("endpoint", required=False)
@click.option("--job", default=None, help="A transform job's logs instead of an endpoint's.")
@click.option("--since", default="10m", show_default=True, help="Span (10m, 2h, 1d) or ISO time.")
@click.option(
    "--filter",
    "pattern",
    default=None,
    help='CloudWatch filter pattern: terms and "quoted phrases" (?a ?b: either, -a: not).',
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--variant", default=None, help="Only this production variant's instances.")
@target_options
def logs(
    endpoint: str | None,
    job: str | None,
    since: str,
    pattern: str | None,
    follow: bool,
    variant: str | None,
    target: Target,
) -> None:
    """Print the instance logs of ENDPOINT (or of --job NAME), oldest first.

    They are CloudWatch Logs groups: /aws/sagemaker/Endpoints/ENDPOINT with a stream per
    instance (VARIANT/INSTANCE-ID), and /aws/sagemaker/TransformJobs with JOB/INSTANCE-ID.
    """
    if (endpoint is None) == (job is None):
        raise click.UsageError("name an ENDPOINT or a transform job with --job (not both).")
    request: dict[str, Any] = {"startTime": since_ms(since, time.time())}
    if job is not None:
        request.update(logGroupName=TRANSFORM_GROUP, logStreamNamePrefix=f"{job}/")
    else:
        assert endpoint is not None
        request["logGroupName"] = endpoint_group(endpoint)
        if variant:
            request["logStreamNamePrefix"] = f"{variant}/"
    if pattern:
        request["filterPattern"] = pattern
    client = target.client("logs")
    try:
        _print(client, request, follow)
    except KeyboardInterrupt:
        return
    except Exception as exc:
        if _not_found(exc):
            what = f"transform job {job}" if job else f"endpoint {endpoint}"
            raise click.ClickException(
                f"no logs for {what} yet (no instance has started)."
            ) from None
        fail(exc)


def _not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and (
        response.get("Error", {}).get("Code") == "ResourceNotFoundException"
    )


def _print(client: Any, request: dict[str, Any], follow: bool) -> None:
    """Print every event since startTime; with `follow`, poll for newer ones, skipping the
    events already printed at the last timestamp (FilterLogEvents' startTime is inclusive)."""
    last_ms: int = request["startTime"]
    printed_at_last: set[str] = set()
    while True:
        for event in _events(client, {**request, "startTime": last_ms}):
            if event["timestamp"] == last_ms and event["eventId"] in printed_at_last:
                continue
            click.echo(format_event(event, show_stream=True))
            if event["timestamp"] != last_ms:
                last_ms, printed_at_last = event["timestamp"], set()
            printed_at_last.add(event["eventId"])
        if not follow:
            return
        time.sleep(FOLLOW_INTERVAL_S)
