"""Commands that run modelhost on this machine: `serve`, and `demo` (which serves the
churn model itself unless given a running server)."""

from __future__ import annotations

import os
import sys
import urllib.parse
from typing import Any

import click

from modelhost.cli.common import Target, target_options
from modelhost.settings import Settings


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: 8080].")
@click.option(
    "--no-auth",
    is_flag=True,
    default=False,
    help="Accept unsigned requests (only on a loopback address; MODELHOST_AUTH_ENABLED=false).",
)
@click.option(
    "--fleet",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="Where instances run: local processes, or a Ray cluster [default: local].",
)
@click.option(
    "--ray-address",
    default=None,
    help="The Ray cluster for --fleet ray (host:port, as `modelhost cluster up` prints it).",
)
@target_options
def serve(
    host: str | None,
    port: int | None,
    no_auth: bool,
    fleet: str | None,
    ray_address: str | None,
    target: Target,
) -> None:
    """Run the server: SageMaker control plane, runtime and /metrics on one port.

    It listens on the host and port of --url (the URL clients are given), unless --host or
    --port say otherwise; its state lives in --home.
    """
    from modelhost.gateway.server import UnsafeConfiguration
    from modelhost.gateway.server import serve as run

    overrides: dict[str, Any] = {}
    if target.given_url:
        parts = urllib.parse.urlsplit(target.given_url)
        if parts.hostname:
            overrides["host"] = parts.hostname
        if parts.port:
            overrides["port"] = parts.port
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if target.home is not None:
        overrides["home"] = target.home
    if no_auth:
        overrides["auth_enabled"] = False
    if fleet is not None:
        overrides["fleet"] = fleet
    if ray_address is not None:
        overrides["ray_address"] = ray_address
    try:
        run(Settings(**overrides))
    except UnsafeConfiguration as exc:
        raise click.ClickException(exc.message) from exc


@click.command()
@click.option(
    "--rows",
    type=int,
    default=10,
    show_default=True,
    help="Number of single-row invocations to show.",
)
@target_options
def demo(rows: int, target: Target) -> None:
    """Train an XGBoost churn model, serve it, call it with boto3, compare predictions.

    Without --url it starts a temporary server (its state in --home, else a temporary
    directory) and stops it at the end; with --url it uses that running server, signing
    with the admin key of --home.
    """
    from modelhost.demo import run_demo

    if target.given_url and target.home is not None:
        # The demo's boto3 clients resolve the key from the settings, like every client.
        os.environ["MODELHOST_HOME"] = str(target.home)
    sys.exit(run_demo(base_url=target.given_url, home=target.home, rows=rows))
