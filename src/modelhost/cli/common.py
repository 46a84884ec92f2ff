"""What every `modelhost` command shares: the `--url` and `--home` options, where they
resolve to, the signed clients built from them, and how errors are printed.

Client commands never bypass the API: they call the server through boto3 (the same API a
SageMaker user calls) or modelhost's native `/api` routes, signed like boto3 signs.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from modelhost.settings import Settings

URL_HELP = (
    "URL of the modelhost server [default: the URL the server of --home last listened on, "
    "else http://127.0.0.1:8080]."
)
HOME_HELP = "State directory of the server [default: ~/.modelhost]."

_AUTH_CODES = (
    "MissingAuthenticationTokenException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
)


@dataclass(frozen=True)
class Target:
    """The server a command talks to (`--url`) and the home whose admin key signs (`--home`).

    Resolution, in one place for every command: the URL is `--url` (or `MODELHOST_URL`), else
    the URL the server of the home recorded when it started, else the settings' default; the
    key is `MODELHOST_ACCESS_KEY_ID`/`MODELHOST_SECRET_ACCESS_KEY`, else the bootstrap admin
    key of the home (`--home` or `MODELHOST_HOME`).
    """

    given_url: str | None = None
    home: Path | None = None

    @functools.cached_property
    def settings(self) -> Settings:
        overrides: dict[str, Any] = {"home": self.home} if self.home is not None else {}
        return Settings(**overrides)

    @functools.cached_property
    def url(self) -> str:
        from modelhost.gateway.auth.keys import KeyStore

        if self.given_url:
            return self.given_url
        return KeyStore(self.settings.home).recorded_url() or self.settings.base_url

    def credentials(self) -> tuple[str, str]:
        from modelhost.gateway.auth.client import resolve

        return resolve(self.settings.home, self.settings)

    def client(self, service: str, read_timeout_s: float = 70.0, max_attempts: int = 3) -> Any:
        """A boto3 client of `service` (sagemaker, cloudwatch, logs…), signed with the key;
        `max_attempts` is botocore's: retries after the first attempt."""
        import boto3
        from botocore.config import Config

        key_id, secret = self.credentials()
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=self.settings.region,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(
                retries={"max_attempts": max_attempts, "mode": "standard"},
                read_timeout=read_timeout_s,
            ),
        )

    def clients(self) -> tuple[Any, Any]:
        """boto3 `sagemaker` and `sagemaker-runtime` clients, signed with the resolved key."""
        return self.client("sagemaker"), self.client("sagemaker-runtime")

    def native(self, method: str, path: str, body: Any = None, timeout_s: float = 30.0) -> Any:
        """Call modelhost's own REST API; print its error and exit 1 on failure."""
        import urllib.error

        from modelhost.gateway.auth.client import call_native

        try:
            return call_native(self.url, method, path, self.credentials(), body, timeout_s)
        except urllib.error.HTTPError as exc:
            err = json.loads(exc.read() or b"{}")
            click.echo(f"error: {err.get('__type')}: {err.get('Message')}", err=True)
            auth_hint(str(err.get("__type")))
        except urllib.error.URLError:
            no_server(self.url)
        sys.exit(1)


def url_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--url", envvar="MODELHOST_URL", show_envvar=True, default=None, help=URL_HELP
    )(fn)


def home_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--home",
        envvar="MODELHOST_HOME",
        show_envvar=True,
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=HOME_HELP,
    )(fn)


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--url` and `--home` to a command; it receives them as one `target: Target`."""

    @functools.wraps(fn)
    def command(*args: Any, url: str | None, home: Path | None, **kwargs: Any) -> Any:
        resolved = home.expanduser().resolve() if home is not None else None
        return fn(*args, target=Target(url, resolved), **kwargs)

    return url_option(home_option(command))


def export_lines(key_id: str, secret: str, region: str, url: str) -> list[str]:
    """Shell `export` lines that point boto3, the AWS CLI and the SageMaker SDK at `url`."""
    return [
        f"export {name}={value}"
        for name, value in (
            ("AWS_ACCESS_KEY_ID", key_id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_DEFAULT_REGION", region),
            ("AWS_ENDPOINT_URL_SAGEMAKER", url),
            ("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url),
            ("AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING", url),
            # CloudWatch Logs (instance logs; the SageMaker SDK tails job logs there) and
            # CloudWatch (metrics and alarms).
            ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", url),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", url),
        )
    ]


def absolute_location(artifact: str) -> str:
    """A location given on the command line (ModelDataUrl, a sample payload): a URL as it
    is, a local path made absolute (the server resolves it, from another directory)."""
    return artifact if "://" in artifact else str(Path(artifact).expanduser().resolve())


def create_endpoint(sm: Any, name: str, instances: int, instance_type: str) -> None:
    """CreateEndpointConfig and CreateEndpoint, both NAME, for model NAME: one variant,
    AllTraffic (what `deploy` and `deploy-containers` create after the model)."""
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": instances,
                "InstanceType": instance_type,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def fail(exc: Exception) -> NoReturn:
    """Print a boto3 error the way a user can act on it and exit 1; re-raise anything else."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        click.echo(f"error: {err.get('Code')}: {err.get('Message')}", err=True)
        auth_hint(str(err.get("Code")))
    elif isinstance(exc, EndpointConnectionError):
        no_server(str(exc.kwargs.get("endpoint_url")))
    else:
        raise exc
    sys.exit(1)


def no_server(url: str) -> None:
    click.echo(
        f"error: no modelhost server answers at {url}; start one with `modelhost serve`.",
        err=True,
    )


def auth_hint(code: str) -> None:
    if code in _AUTH_CODES:
        click.echo(
            "hint: the CLI signs with MODELHOST_ACCESS_KEY_ID/MODELHOST_SECRET_ACCESS_KEY, else "
            "with the admin key of the local home (--home or MODELHOST_HOME); "
            "see docs/security.md.",
            err=True,
        )
