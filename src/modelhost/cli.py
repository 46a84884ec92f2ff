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


def _clients(url: str) -> tuple[Any, Any]:
    import boto3
    from botocore.config import Config

    kwargs: dict[str, Any] = {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": "modelhost",
        "aws_secret_access_key": "modelhost",
        "config": Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=70),
    }
    return boto3.client("sagemaker", **kwargs), boto3.client("sagemaker-runtime", **kwargs)


def _fail(exc: Exception) -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        click.echo(f"error: {err.get('Code')}: {err.get('Message')}", err=True)
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
def serve(host: str | None, port: int | None, home: Path | None) -> None:
    """Run the server: SageMaker control plane, runtime and /metrics on one port."""
    from modelhost.gateway.server import serve as run

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if home is not None:
        overrides["home"] = home.expanduser().resolve()
    run(Settings(**overrides))


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
@click.option("--target-model", default=None, help="Multi-model endpoints: e.g. CA.tar.gz.")
@url_option
def invoke(
    name: str,
    body: str | None,
    file: Any,
    content_type: str,
    accept: str | None,
    target_variant: str | None,
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


def _native(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call modelhost's own REST API; print its error and exit 1 on failure."""
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        err = json.loads(exc.read() or b"{}")
        click.echo(f"error: {err.get('__type')}: {err.get('Message')}", err=True)
    except urllib.error.URLError:
        click.echo(
            f"error: no modelhost server answers at {url}; start one with `modelhost serve`.",
            err=True,
        )
    sys.exit(1)


@main.group()
def alarms() -> None:
    """Alarms over endpoint metrics (used by AutoRollbackConfiguration)."""


@alarms.command("put")
@click.argument("name")
@click.option("--endpoint", required=True, help="EndpointName dimension.")
@click.option("--variant", default=None, help="VariantName dimension (default: all).")
@click.option(
    "--metric",
    required=True,
    help="Invocations, Invocation4XXErrors, Invocation5XXErrors, ModelLatency or OverheadLatency.",
)
@click.option("--statistic", default="Sum", show_default=True)
@click.option("--period", type=int, default=60, show_default=True, help="Seconds.")
@click.option("--evaluation-periods", type=int, default=1, show_default=True)
@click.option("--datapoints-to-alarm", type=int, default=None)
@click.option("--threshold", type=float, required=True)
@click.option("--comparison", default="GreaterThanOrEqualToThreshold", show_default=True)
@click.option("--treat-missing-data", default="missing", show_default=True)
@url_option
def alarms_put(
    name: str,
    endpoint: str,
    variant: str | None,
    metric: str,
    statistic: str,
    period: int,
    evaluation_periods: int,
    datapoints_to_alarm: int | None,
    threshold: float,
    comparison: str,
    treat_missing_data: str,
    url: str | None,
) -> None:
    """Create or replace alarm NAME."""
    dims = [{"Name": "EndpointName", "Value": endpoint}]
    if variant:
        dims.append({"Name": "VariantName", "Value": variant})
    body: dict[str, Any] = {
        "MetricName": metric,
        "Dimensions": dims,
        "Statistic": statistic,
        "Period": period,
        "EvaluationPeriods": evaluation_periods,
        "Threshold": threshold,
        "ComparisonOperator": comparison,
        "TreatMissingData": treat_missing_data,
    }
    if datapoints_to_alarm is not None:
        body["DatapointsToAlarm"] = datapoints_to_alarm
    out = _native(_url(url), "PUT", f"/api/alarms/{name}", body)
    click.echo(f"alarm {name}: {out['StateValue']}")


@alarms.command("list")
@url_option
def alarms_list(url: str | None) -> None:
    """Alarms and their states."""
    for alarm in _native(_url(url), "GET", "/api/alarms")["MetricAlarms"]:
        dims = ",".join(d["Value"] for d in alarm["Dimensions"])
        click.echo(
            f"{alarm['AlarmName']}  {alarm['StateValue']}  {alarm['MetricName']}"
            f"({dims}) {alarm['Statistic']} {alarm['ComparisonOperator']} "
            f"{alarm['Threshold']:g}"
        )


@alarms.command("show")
@click.argument("name")
@url_option
def alarms_show(name: str, url: str | None) -> None:
    """Alarm NAME with its state history."""
    import json

    click.echo(json.dumps(_native(_url(url), "GET", f"/api/alarms/{name}"), indent=2))


@alarms.command("delete")
@click.argument("name")
@url_option
def alarms_delete(name: str, url: str | None) -> None:
    """Delete alarm NAME."""
    _native(_url(url), "DELETE", f"/api/alarms/{name}")
    click.echo(f"alarm {name}: deleted")


@main.command()
@click.argument("name")
@url_option
def events(name: str, url: str | None) -> None:
    """Deployment events of endpoint NAME (traffic steps, baking, rollbacks)."""
    import datetime as dt

    for event in _native(_url(url), "GET", f"/api/endpoints/{name}/events")["Events"]:
        when = dt.datetime.fromtimestamp(event["Time"]).strftime("%H:%M:%S")
        click.echo(f"{when}  {event['Status']:<17} {event['Message']}")


@main.command("shadow-report")
@click.argument("name")
@click.option(
    "--tolerance",
    type=float,
    default=1e-6,
    show_default=True,
    help="Numbers closer than this count as agreeing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON report.")
@url_option
def shadow_report(name: str, tolerance: float, as_json: bool, url: str | None) -> None:
    """Compare endpoint NAME's shadow answers with production's: agreement, latency, errors."""
    import json
    import urllib.parse

    query = urllib.parse.urlencode({"tolerance": repr(tolerance)})
    out = _native(_url(url), "GET", f"/api/endpoints/{name}/shadow-report?{query}")
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if not out["ShadowVariants"]:
        click.echo(f"endpoint {name}: no shadow captures yet")

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    def us(v: float | None) -> str:
        return "-" if v is None else f"{v / 1000:.2f} ms"

    for v in out["ShadowVariants"]:
        click.echo(f"shadow variant {v['VariantName']}: {v['Pairs']} pairs")
        click.echo(f"  exact agreement    {pct(v['ExactAgreement'])}")
        click.echo(
            f"  numeric agreement  {pct(v['NumericAgreement'])} within {tolerance:g} "
            f"({v['NumericCompared']} compared, {v['NumericUnparsed']} not numeric)"
        )
        for side in ("Production", "Shadow"):
            s = v[side]
            click.echo(
                f"  {side.lower():<10} p50 {us(s['LatencyP50Us'])}  p99 {us(s['LatencyP99Us'])}"
                f"  errors {pct(s['ErrorRate'])}"
            )


@main.command("promote-shadow")
@click.argument("name")
@url_option
def promote_shadow(name: str, url: str | None) -> None:
    """Make endpoint NAME's shadow model the production model (a normal UpdateEndpoint)."""
    out = _native(_url(url), "POST", f"/api/endpoints/{name}/promote-shadow", {})
    click.echo(
        f"endpoint {name}: updating to {out['EndpointConfigName']} "
        "(wait for InService: modelhost endpoints)"
    )


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


if __name__ == "__main__":
    main()
