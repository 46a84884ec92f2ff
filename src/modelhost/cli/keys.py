"""`modelhost credentials` and `modelhost keys`: access keys for SigV4 authentication."""

from __future__ import annotations

import click

from modelhost.cli.common import Target, export_lines, target_options


@click.command()
@target_options
def credentials(target: Target) -> None:
    """Print shell lines that point boto3 and the AWS CLI at this server with the admin key.

    The URL is --url, else where the server of this home last listened, else the default.
    """
    from modelhost.errors import UnsafeConfiguration
    from modelhost.gateway.auth.key_table import bootstrap_credentials

    settings = target.settings
    try:
        found = bootstrap_credentials(settings.home, settings.database_url, settings)
    except UnsafeConfiguration as exc:
        raise click.ClickException(exc.message) from exc
    if found is None:
        raise click.ClickException(
            f"no admin key in {target.settings.home}/auth: start the server once "
            "(`modelhost serve`) or create a key with `modelhost keys create --role admin`."
        )
    for line in export_lines(*found, target.settings.region, target.url):
        click.echo(line)


@click.group()
def keys() -> None:
    """Access keys and their roles (admin only)."""


@keys.command("create")
@click.option(
    "--role",
    type=click.Choice(["admin", "deployer", "invoker"]),
    required=True,
    help="invoker: runtime only; deployer: also models, configs, endpoints, jobs; admin: keys.",
)
@click.option(
    "--endpoints",
    default="*",
    show_default=True,
    help="Comma-separated glob patterns of the endpoints the key may use (e.g. 'churn-*').",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "env"]),
    default="text",
    show_default=True,
    help="env: `export` lines for the new key, as `modelhost credentials` prints them.",
)
@target_options
def keys_create(role: str, endpoints: str, output_format: str, target: Target) -> None:
    """Create an access key; its secret is printed once and cannot be shown again."""
    out = target.native("POST", "/api/keys", {"Role": role, "Endpoints": endpoints})
    if output_format == "env":
        lines = export_lines(
            out["AccessKeyId"], out["SecretAccessKey"], target.settings.region, target.url
        )
        for line in lines:
            click.echo(line)
        click.echo("The secret is shown only now; store it safely.", err=True)
        return
    click.echo(f"AccessKeyId:     {out['AccessKeyId']}")
    click.echo(f"SecretAccessKey: {out['SecretAccessKey']}")
    click.echo(f"Role:            {out['Role']} (endpoints: {out['Endpoints']})")
    click.echo("The secret is shown only now; store it safely.", err=True)


@keys.command("list")
@target_options
def keys_list(target: Target) -> None:
    """Access keys with role, endpoint patterns and status (never secrets)."""
    import datetime as dt

    for key in target.native("GET", "/api/keys")["AccessKeys"]:
        when = dt.datetime.fromtimestamp(key["CreationTime"]).strftime("%Y-%m-%d %H:%M:%S")
        tag = " (bootstrap)" if key["Bootstrap"] else ""
        click.echo(
            f"{key['AccessKeyId']}  {key['Role']:<8} {key['Status']:<7} {when}  "
            f"endpoints={key['Endpoints']}{tag}"
        )


@keys.command("revoke")
@click.argument("access_key_id")
@target_options
def keys_revoke(access_key_id: str, target: Target) -> None:
    """Revoke ACCESS_KEY_ID: requests signed with it are refused from now on."""
    target.native("DELETE", f"/api/keys/{access_key_id}")
    click.echo(f"access key {access_key_id}: revoked")
