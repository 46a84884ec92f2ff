"""`modelhost credentials` and `modelhost keys`: access keys for SigV4 authentication."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from modelhost.cli import _native, _url, main, url_option
from modelhost.settings import Settings


@main.command()
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=None,
    help="State directory of the server [default: ~/.modelhost, or MODELHOST_HOME].",
)
@url_option
def credentials(home: Path | None, url: str | None) -> None:
    """Print shell lines that point boto3 and the AWS CLI at this server with the admin key.

    The URL is --url, else where the server of this home last listened, else the default.
    """
    from modelhost.gateway.auth.keys import KeyStore

    overrides: dict[str, Any] = {"home": home.expanduser().resolve()} if home else {}
    settings = Settings(**overrides)
    store = KeyStore(settings.home)
    found = store.bootstrap_credentials()
    if found is None:
        raise click.ClickException(
            f"no admin key in {settings.home}/auth: start the server once (`modelhost serve`) "
            "or create a key with `modelhost keys create --role admin`."
        )
    endpoint = url or store.recorded_url() or settings.base_url
    for name, value in (
        ("AWS_ACCESS_KEY_ID", found[0]),
        ("AWS_SECRET_ACCESS_KEY", found[1]),
        ("AWS_DEFAULT_REGION", settings.region),
        ("AWS_ENDPOINT_URL_SAGEMAKER", endpoint),
        ("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", endpoint),
        ("AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING", endpoint),
        # CloudWatch Logs (instance logs; the SageMaker SDK tails job logs there) and
        # CloudWatch.
        ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", endpoint),
        ("AWS_ENDPOINT_URL_CLOUDWATCH", endpoint),
    ):
        click.echo(f"export {name}={value}")


@main.group()
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
@url_option
def keys_create(role: str, endpoints: str, url: str | None) -> None:
    """Create an access key; its secret is printed once and cannot be shown again."""
    out = _native(_url(url), "POST", "/api/keys", {"Role": role, "Endpoints": endpoints})
    click.echo(f"AccessKeyId:     {out['AccessKeyId']}")
    click.echo(f"SecretAccessKey: {out['SecretAccessKey']}")
    click.echo(f"Role:            {out['Role']} (endpoints: {out['Endpoints']})")
    click.echo("The secret is shown only now; store it safely.", err=True)


@keys.command("list")
@url_option
def keys_list(url: str | None) -> None:
    """Access keys with role, endpoint patterns and status (never secrets)."""
    import datetime as dt

    for key in _native(_url(url), "GET", "/api/keys")["AccessKeys"]:
        when = dt.datetime.fromtimestamp(key["CreationTime"]).strftime("%Y-%m-%d %H:%M:%S")
        tag = " (bootstrap)" if key["Bootstrap"] else ""
        click.echo(
            f"{key['AccessKeyId']}  {key['Role']:<8} {key['Status']:<7} {when}  "
            f"endpoints={key['Endpoints']}{tag}"
        )


@keys.command("revoke")
@click.argument("access_key_id")
@url_option
def keys_revoke(access_key_id: str, url: str | None) -> None:
    """Revoke ACCESS_KEY_ID: requests signed with it are refused from now on."""
    _native(_url(url), "DELETE", f"/api/keys/{access_key_id}")
    click.echo(f"access key {access_key_id}: revoked")


if __name__ == "__main__":
    main()
