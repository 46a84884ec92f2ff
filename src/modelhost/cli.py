"""The `modelhost` command.

`serve` runs the server; the other commands are clients that talk to a running server
through boto3 (the same API a SageMaker user calls), so the CLI never bypasses the API.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import click

from modelhost import __version__
from modelhost.settings import Settings

FRAMEWORK_IMAGES = {
    "xgboost": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
    "sklearn": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1",
    "lightgbm": "lightgbm",
    "onnx": "onnx",
    "pytorch": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310",
    "mlflow": "mlflow",
}


def _credentials() -> tuple[str, str]:
    from modelhost.gateway.auth.client import resolve

    return resolve()


def _clients(url: str) -> tuple[Any, Any]:
    import boto3
    from botocore.config import Config

    key_id, secret = _credentials()
    kwargs: dict[str, Any] = {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": key_id,
        "aws_secret_access_key": secret,
        "config": Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=70),
    }
    return boto3.client("sagemaker", **kwargs), boto3.client("sagemaker-runtime", **kwargs)


def _fail(exc: Exception) -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        click.echo(f"error: {err.get('Code')}: {err.get('Message')}", err=True)
        _auth_hint(str(err.get("Code")))
    elif isinstance(exc, EndpointConnectionError):
        click.echo(
            f"error: no modelhost server answers at {exc.kwargs.get('endpoint_url')}; "
            "start one with `modelhost serve`.",
            err=True,
        )
    else:
        raise exc
    sys.exit(1)


url_option = click.option(
    "--url",
    envvar="MODELHOST_URL",
    default=None,
    help="URL of a running modelhost server [default: http://127.0.0.1:8080].",
)


def _url(url: str | None) -> str:
    return url or Settings().base_url


@click.group()
@click.version_option(__version__, prog_name="modelhost")
def main() -> None:
    """modelhost: host models behind SageMaker-compatible endpoints."""


@main.command()
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: 8080].")
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=None,
    help="State directory [default: ~/.modelhost, or MODELHOST_HOME].",
)
@click.option(
    "--no-auth",
    is_flag=True,
    default=False,
    help="Accept unsigned requests (only on a loopback address; MODELHOST_AUTH_ENABLED=false).",
)
def serve(host: str | None, port: int | None, home: Path | None, no_auth: bool) -> None:
    """Run the server: SageMaker control plane, runtime and /metrics on one port."""
    from modelhost.gateway.server import UnsafeConfiguration
    from modelhost.gateway.server import serve as run

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if home is not None:
        overrides["home"] = home.expanduser().resolve()
    if no_auth:
        overrides["auth_enabled"] = False
    try:
        run(Settings(**overrides))
    except UnsafeConfiguration as exc:
        raise click.ClickException(exc.message) from exc


@main.command()
@click.argument("artifact")
@click.option("--name", required=True, help="Name of the model, endpoint config and endpoint.")
@click.option(
    "--framework",
    type=click.Choice([*sorted(FRAMEWORK_IMAGES), "auto"]),
    default="auto",
    show_default=True,
    help="Built-in runtime; auto detects it from the artifact.",
)
@click.option(
    "--image",
    default=None,
    help="Image (overrides --framework): a framework image URI, 'command:<your server>', "
    "an executable's path, or a container image. See docs/byoc.md.",
)
@click.option(
    "--instances",
    type=int,
    default=1,
    show_default=True,
    help="InitialInstanceCount of the variant.",
)
@click.option("--instance-type", default="ml.m5.large", show_default=True)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    help="Container environment variable (repeatable).",
)
@click.option(
    "--timeout", type=float, default=600, show_default=True, help="Seconds to wait for InService."
)
@url_option
def deploy(
    artifact: str,
    name: str,
    framework: str,
    image: str | None,
    instances: int,
    instance_type: str,
    env: tuple[str, ...],
    timeout: float,
    url: str | None,
) -> None:
    """Create model, endpoint config and endpoint NAME from ARTIFACT, and wait for InService.

    ARTIFACT is a model.tar.gz, a model directory, a file:// or an s3:// URL.
    """
    sm, _ = _clients(_url(url))
    if "://" not in artifact:
        artifact = str(Path(artifact).expanduser().resolve())
    container: dict[str, Any] = {"ModelDataUrl": artifact}
    if image or framework != "auto":
        container["Image"] = image or FRAMEWORK_IMAGES[framework]
    if env:
        container["Environment"] = dict(e.split("=", 1) for e in env)
    try:
        sm.create_model(ModelName=name, PrimaryContainer=container)
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
        click.echo(f"endpoint {name}: Creating", nl=False)
        deadline = time.monotonic() + timeout
        while True:
            desc = sm.describe_endpoint(EndpointName=name)
            status = desc["EndpointStatus"]
            if status == "InService":
                click.echo(f"\nendpoint {name}: InService")
                return
            if status == "Failed":
                click.echo(f"\nendpoint {name}: Failed: {desc.get('FailureReason')}", err=True)
                sys.exit(1)
            if time.monotonic() > deadline:
                click.echo(f"\nendpoint {name}: still {status} after {timeout:g} s", err=True)
                sys.exit(1)
            click.echo(".", nl=False)
            time.sleep(0.5)
    except Exception as exc:
        _fail(exc)


@main.command()
@click.argument("name")
@click.option("--body", default=None, help="Request body (text).")
@click.option(
    "--file",
    "file",
    type=click.File("rb"),
    default=None,
    help="Read the body from a file ('-' for stdin).",
)
@click.option("--content-type", default="text/csv", show_default=True)
@click.option("--accept", default=None)
@click.option("--target-variant", default=None)
@click.option(
    "--target-container",
    default=None,
    metavar="HOSTNAME",
    help="TargetContainerHostname: the container of a multi-container endpoint (Direct mode).",
)
@click.option("--target-model", default=None, help="Multi-model endpoints: e.g. CA.tar.gz.")
@url_option
def invoke(
    name: str,
    body: str | None,
    file: Any,
    content_type: str,
    accept: str | None,
    target_variant: str | None,
    target_container: str | None,
    url: str | None,
    target_model: str | None = None,
) -> None:
    """Invoke endpoint NAME and print the answer."""
    _, rt = _clients(_url(url))
    if (body is None) == (file is None):
        raise click.UsageError("give exactly one of --body or --file")
    payload = body.encode() if body is not None else file.read()
    kwargs: dict[str, Any] = {"EndpointName": name, "Body": payload, "ContentType": content_type}
    if accept:
        kwargs["Accept"] = accept
    if target_variant:
        kwargs["TargetVariant"] = target_variant
    if target_container:
        kwargs["TargetContainerHostname"] = target_container
    if target_model:
        kwargs["TargetModel"] = target_model
    try:
        resp = rt.invoke_endpoint(**kwargs)
    except Exception as exc:
        _fail(exc)
        return
    out = resp["Body"].read()
    click.echo(out.decode("utf-8", "replace").rstrip("\n"))


@main.command()
@url_option
def endpoints(url: str | None) -> None:
    """List endpoints as a table."""
    sm, _ = _clients(_url(url))
    try:
        rows = []
        for page in sm.get_paginator("list_endpoints").paginate():
            rows.extend(page["Endpoints"])
    except Exception as exc:
        _fail(exc)
        return
    header = ("NAME", "STATUS", "CREATED", "MODIFIED")
    table = [header] + [
        (
            e["EndpointName"],
            e["EndpointStatus"],
            e["CreationTime"].strftime("%Y-%m-%d %H:%M:%S"),
            e["LastModifiedTime"].strftime("%Y-%m-%d %H:%M:%S"),
        )
        for e in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@main.command()
@click.argument("name")
@click.option("--keep-config", is_flag=True, help="Keep the endpoint config and model.")
@url_option
def delete(name: str, keep_config: bool, url: str | None) -> None:
    """Delete endpoint NAME (and the config and model of the same name)."""
    sm, _ = _clients(_url(url))
    from botocore.exceptions import ClientError

    try:
        sm.delete_endpoint(EndpointName=name)
        click.echo(f"endpoint {name}: Deleting")
    except Exception as exc:
        _fail(exc)
    if keep_config:
        return
    for call, key in (
        (sm.delete_endpoint_config, "EndpointConfigName"),
        (sm.delete_model, "ModelName"),
    ):
        # Created separately under another name: nothing to clean up.
        with contextlib.suppress(ClientError):
            call(**{key: name})


def _native(url: str, method: str, path: str, body: Any = None, timeout_s: float = 30.0) -> Any:
    """Call modelhost's own REST API; print its error and exit 1 on failure."""
    import json
    import urllib.error

    from modelhost.gateway.auth.client import call_native

    try:
        return call_native(url, method, path, _credentials(), body, timeout_s)
    except urllib.error.HTTPError as exc:
        err = json.loads(exc.read() or b"{}")
        click.echo(f"error: {err.get('__type')}: {err.get('Message')}", err=True)
        _auth_hint(str(err.get("__type")))
    except urllib.error.URLError:
        click.echo(
            f"error: no modelhost server answers at {url}; start one with `modelhost serve`.",
            err=True,
        )
    sys.exit(1)



@main.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@url_option
def models(name: str, as_json: bool, url: str | None) -> None:
    """List the models loaded on each instance of multi-model endpoint NAME."""
    import json

    out = _native(_url(url), "GET", f"/api/endpoints/{name}/models")
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if not out["Instances"]:
        click.echo(f"endpoint {name}: no multi-model instance is serving")
        return
    for inst in out["Instances"]:
        if "Error" in inst:
            click.echo(
                f"{inst['InstanceId']} ({inst['VariantName']}): unreachable: {inst['Error']}"
            )
            continue
        used, budget = inst.get("UsedBytes") or 0, inst.get("BudgetBytes") or 0
        click.echo(
            f"{inst['InstanceId']} ({inst['VariantName']}): {len(inst['Models'])} models, "
            f"{used / 2**20:.1f} of {budget / 2**20:.1f} MiB, {inst['Outstanding']} in flight"
        )
        for m in inst["Models"]:
            click.echo(f"  {m['ModelName']:<40} {(m.get('MemoryBytes') or 0) / 1024:>10.1f} KiB")


@main.command()
@click.option(
    "--rows",
    type=int,
    default=10,
    show_default=True,
    help="Number of single-row invocations to show.",
)
@click.option(
    "--url",
    default=None,
    help="Use this running modelhost server instead of starting a temporary one.",
)
def demo(rows: int, url: str | None) -> None:
    """Train an XGBoost churn model, serve it, call it with boto3, compare predictions."""
    from modelhost.demo import run_demo

    sys.exit(run_demo(base_url=url, rows=rows))



# Multi-container models have their own deploy command (cli_containers.py).
from modelhost.cli_containers import deploy_containers  # noqa: E402

main.add_command(deploy_containers)
# Batch transform commands (`transform`, `jobs`) register themselves on `main`.
from modelhost import cli_jobs as _cli_jobs  # noqa: E402, F401


def _auth_hint(code: str) -> None:
    if code in (
        "MissingAuthenticationTokenException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
    ):
        click.echo(
            "hint: the CLI signs with MODELHOST_ACCESS_KEY_ID/MODELHOST_SECRET_ACCESS_KEY, else "
            "with the admin key of the local home (MODELHOST_HOME); see docs/security.md.",
            err=True,
        )


# Command groups that live in their own modules register themselves on `main`.
from modelhost import cli_deployments as _cli_deployments  # noqa: E402, F401
from modelhost import cli_edge as _cli_edge  # noqa: E402, F401
from modelhost import cli_keys as _cli_keys  # noqa: E402, F401
from modelhost import cli_predictions as _cli_predictions  # noqa: E402, F401
