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


@main.group()
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
@url_option
def predictions_load(
    store: str,
    input_location: str,
    output_location: str,
    key_column: str,
    content_type: str,
    accept: str | None,
    run_id: str | None,
    header: bool | None,
    url: str | None,
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
    out = _native(_url(url), "POST", f"/predictions/{store}/load", body, timeout_s=3600)
    verb = "loaded" if out["Loaded"] else "already current:"
    click.echo(f"{store}: {verb} run {out['RunId']} ({out['KeyCount']} keys)")


@predictions.command("get")
@click.argument("store")
@click.argument("keys", nargs=-1, required=True)
@url_option
def predictions_get(store: str, keys: tuple[str, ...], url: str | None) -> None:
    """Print the predictions of KEYS in STORE (key, tab, prediction); exit 1 if one is missing."""
    import json

    out = _native(_url(url), "POST", f"/predictions/{store}/batch-get", {"Keys": list(keys)})
    for key in keys:
        if key in out["Predictions"]:
            value = out["Predictions"][key]
            click.echo(f"{key}\t{value if isinstance(value, str) else json.dumps(value)}")
    for key in out["MissingKeys"]:
        click.echo(f"error: key {key} is not in {store} (run {out['RunId']})", err=True)
    sys.exit(1 if out["MissingKeys"] else 0)


@predictions.command("list")
@url_option
def predictions_list(url: str | None) -> None:
    """List prediction stores: current run id, key count, load time."""
    for run in _native(_url(url), "GET", "/predictions")["Stores"]:
        click.echo(_store_line(run))


@predictions.command("describe")
@click.argument("store")
@url_option
def predictions_describe(store: str, url: str | None) -> None:
    """Show STORE's current run."""
    click.echo(_store_line(_native(_url(url), "GET", f"/predictions/{store}")))


@predictions.command("delete")
@click.argument("store")
@url_option
def predictions_delete(store: str, url: str | None) -> None:
    """Delete STORE and its runs."""
    _native(_url(url), "DELETE", f"/predictions/{store}")
    click.echo(f"{store}: deleted")


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


@main.command()
@click.argument("name")
@click.option(
    "--strategy",
    type=click.Choice(["thompson", "epsilon-greedy"]),
    default=None,
    help="Turn bandit routing on with this strategy.",
)
@click.option("--min-exploration", type=float, default=None, help="Least share per variant.")
@click.option("--epsilon", type=float, default=None, help="Exploration share (epsilon-greedy).")
@click.option("--reward-window", type=float, default=None, help="Seconds a reward may arrive.")
@click.option("--off", is_flag=True, help="Back to the endpoint config's weights.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@url_option
def routing(
    name: str,
    strategy: str | None,
    min_exploration: float | None,
    epsilon: float | None,
    reward_window: float | None,
    off: bool,
    as_json: bool,
    url: str | None,
) -> None:
    """Show or set endpoint NAME's routing: configured weights, or a multi-armed bandit."""
    import json

    path = f"/api/endpoints/{name}/routing"
    if off:
        out = _native(_url(url), "DELETE", path)
    elif strategy or min_exploration is not None or epsilon is not None or reward_window:
        body: dict[str, Any] = {
            "Strategy": "EpsilonGreedy" if strategy == "epsilon-greedy" else "ThompsonSampling"
        }
        for key, value in (
            ("MinExplorationShare", min_exploration),
            ("Epsilon", epsilon),
            ("RewardWindowSeconds", reward_window),
        ):
            if value is not None:
                body[key] = value
        out = _native(_url(url), "PUT", path, body)
    else:
        out = _native(_url(url), "GET", path)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if not out.get("RoutingConfig"):
        click.echo(f"endpoint {name}: configured weights (no bandit)")
        return
    config = out["RoutingConfig"]
    click.echo(
        f"endpoint {name}: {config['Strategy']} (min exploration "
        f"{config['MinExplorationShare']:.0%}, reward window {config['RewardWindowSeconds']:g} s)"
    )
    weights = out.get("CurrentWeights") or {}
    stats = {v["VariantName"]: v for v in out.get("Variants", [])}
    for variant in sorted(set(weights) | set(stats)):
        s = stats.get(variant, {})
        mean = s.get("MeanReward")
        click.echo(
            f"  {variant:<20} weight {weights.get(variant, 0.0):6.1%}  "
            f"invocations {s.get('Invocations', 0):>7}  rewards {s.get('Rewards', 0):>7}  "
            f"mean {'-' if mean is None else f'{mean:.3f}'}"
        )
    outcomes = out.get("RewardOutcomes") or {}
    click.echo("  rewards: " + ", ".join(f"{k} {v}" for k, v in outcomes.items()))


@main.command()
@click.argument("name")
@click.argument("inference_id", required=False)
@click.argument("value", type=float, required=False)
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON Lines of {InferenceId, Reward}, sent in batches.",
)
@url_option
def reward(
    name: str, inference_id: str | None, value: float | None, path: Path | None, url: str | None
) -> None:
    """Report a reward in [0, 1] for an invocation of endpoint NAME (bandit routing)."""
    import json

    if path is not None:
        items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    elif inference_id is not None and value is not None:
        items = [{"InferenceId": inference_id, "Reward": value}]
    else:
        raise click.UsageError("give INFERENCE_ID and VALUE, or --file")
    totals: dict[str, int] = {}
    for start in range(0, len(items), 1000):
        out = _native(
            _url(url),
            "POST",
            f"/api/endpoints/{name}/rewards",
            {"Rewards": items[start : start + 1000]},
        )
        for outcome, count in out["Counts"].items():
            totals[outcome] = totals.get(outcome, 0) + count
    click.echo(", ".join(f"{k} {v}" for k, v in totals.items()))
