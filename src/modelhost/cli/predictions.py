"""`modelhost predictions`: load transform outputs into a prediction store, read by key."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from modelhost.cli.common import Target, target_options


@click.group()
def predictions() -> None:
    """Batch predictions stored for lookups by key (embedded, Redis or DynamoDB)."""


def _store_line(run: dict[str, Any]) -> str:
    loaded = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["LoadedAt"]))
    return (
        f"{run['StoreName']:<24} {run['RunId']:<26} {run['KeyCount']:>10} keys  "
        f"loaded {loaded}  ({run['ValueFormat']})"
    )


@predictions.command("load")
@click.argument("store")
@click.option("--input", "input_location", required=True, help="Transform input: path or s3://.")
@click.option("--output", "output_location", required=True, help="Transform output prefix.")
@click.option(
    "--key",
    "key_column",
    required=True,
    help="Key column: CSV index or name, or a JSON Lines field.",
)
@click.option("--content-type", default="text/csv", show_default=True, help="Input content type.")
@click.option("--accept", default=None, help="Output content type [default: --content-type].")
@click.option("--run-id", default=None, help="Run id [default: from the files' fingerprints].")
@click.option("--header/--no-header", default=None, help="CSV inputs start with a header line.")
@target_options
def predictions_load(
    store: str,
    input_location: str,
    output_location: str,
    key_column: str,
    content_type: str,
    accept: str | None,
    run_id: str | None,
    header: bool | None,
    target: Target,
) -> None:
    """Load a transform job's output into STORE as a new run (replaces the current one)."""
    body = {
        "InputLocation": input_location,
        "OutputLocation": output_location,
        "KeyColumn": key_column,
        "ContentType": content_type,
        "Accept": accept,
        "RunId": run_id,
        "HasHeader": header,
    }
    out = target.native("POST", f"/predictions/{store}/load", body, timeout_s=3600)
    verb = "loaded" if out["Loaded"] else "already current:"
    click.echo(f"{store}: {verb} run {out['RunId']} ({out['KeyCount']} keys)")


@predictions.command("get")
@click.argument("store")
@click.argument("keys", nargs=-1, required=True)
@target_options
def predictions_get(store: str, keys: tuple[str, ...], target: Target) -> None:
    """Print the predictions of KEYS in STORE (key, tab, prediction); exit 1 if one is missing."""
    import json

    out = target.native("POST", f"/predictions/{store}/batch-get", {"Keys": list(keys)})
    for key in keys:
        if key in out["Predictions"]:
            value = out["Predictions"][key]
            click.echo(f"{key}\t{value if isinstance(value, str) else json.dumps(value)}")
    for key in out["MissingKeys"]:
        click.echo(f"error: key {key} is not in {store} (run {out['RunId']})", err=True)
    sys.exit(1 if out["MissingKeys"] else 0)


@predictions.command("list")
@target_options
def predictions_list(target: Target) -> None:
    """List prediction stores: current run id, key count, load time."""
    for run in target.native("GET", "/predictions")["Stores"]:
        click.echo(_store_line(run))


@predictions.command("describe")
@click.argument("store")
@target_options
def predictions_describe(store: str, target: Target) -> None:
    """Show STORE's current run."""
    click.echo(_store_line(target.native("GET", f"/predictions/{store}")))


@predictions.command("delete")
@click.argument("store")
@target_options
def predictions_delete(store: str, target: Target) -> None:
    """Delete STORE and its runs."""
    target.native("DELETE", f"/predictions/{store}")
    click.echo(f"{store}: deleted")
