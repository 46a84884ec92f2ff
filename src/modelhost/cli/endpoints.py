"""Endpoint commands: deploy, invoke, endpoints, delete, and the models of a multi-model
endpoint; through boto3, as a SageMaker user would call them."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

import click

from modelhost.cli.common import Target, absolute_location, create_endpoint, fail, target_options
from modelhost.cli.recommend import deploy_recommendation

FRAMEWORK_IMAGES = {
    "xgboost": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
    "sklearn": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1",
    "lightgbm": "lightgbm",
    "onnx": "onnx",
    "pytorch": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310",
    "mlflow": "mlflow",
}


@click.command()
@click.argument("artifact", required=False)
@click.option("--name", required=True, help="Name of the model, endpoint config and endpoint.")
@click.option(
    "--from-recommendation",
    "recommendation",
    metavar="JOB/N",
    default=None,
    help="Deploy recommendation N (1: the first listed) of inference recommendations job "
    "JOB as it is, instead of ARTIFACT.",
)
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
@target_options
def deploy(
    artifact: str | None,
    name: str,
    recommendation: str | None,
    framework: str,
    image: str | None,
    instances: int,
    instance_type: str,
    env: tuple[str, ...],
    timeout: float,
    target: Target,
) -> None:
    """Create model, endpoint config and endpoint NAME from ARTIFACT, and wait for InService.

    ARTIFACT is a model.tar.gz, a model directory, a file:// or an s3:// URL. With
    --from-recommendation JOB/N instead, the recommendation's EndpointConfiguration is
    deployed with the job's model.
    """
    if artifact is None or recommendation is not None:
        if (artifact is None) == (recommendation is None):
            raise click.UsageError("give ARTIFACT or --from-recommendation JOB/N (one of them)")
        return deploy_recommendation(target, str(recommendation), name)
    sm, _ = target.clients()
    container: dict[str, Any] = {"ModelDataUrl": absolute_location(artifact)}
    if image or framework != "auto":
        container["Image"] = image or FRAMEWORK_IMAGES[framework]
    if env:
        container["Environment"] = dict(e.split("=", 1) for e in env)
    try:
        sm.create_model(ModelName=name, PrimaryContainer=container)
        create_endpoint(sm, name, instances, instance_type)
        _progress(sm, name, timeout)
    except Exception as exc:
        fail(exc)


def _progress(sm: Any, name: str, timeout: float) -> None:
    """Dots until the endpoint is InService; exit 1 when it fails or takes too long."""
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


@click.command()
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
@target_options
def invoke(
    name: str,
    body: str | None,
    file: Any,
    content_type: str,
    accept: str | None,
    target_variant: str | None,
    target_container: str | None,
    target: Target,
    target_model: str | None = None,
) -> None:
    """Invoke endpoint NAME and print the answer."""
    _, rt = target.clients()
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
        fail(exc)
        return
    out = resp["Body"].read()
    click.echo(out.decode("utf-8", "replace").rstrip("\n"))


def _described(sm: Any, name: str) -> tuple[str, str]:
    """(variants, kind) of one endpoint: each production variant as `name: real-time, N
    instances` or `name: serverless M MB, max C concurrent, N running`; the kind is
    "async" (AsyncInferenceConfig), "serverless" or "real-time"."""
    try:
        described = sm.describe_endpoint(EndpointName=name)
    except Exception:
        return "-", "?"  # deleted meanwhile
    parts = []
    serverless_variants = 0
    for v in described.get("ProductionVariants") or []:
        running = v.get("CurrentInstanceCount", 0)
        serverless = v.get("CurrentServerlessConfig")
        if serverless:
            serverless_variants += 1
            parts.append(
                f"{v['VariantName']}: serverless {serverless['MemorySizeInMB']} MB, max "
                f"{serverless['MaxConcurrency']} concurrent, {running} running"
            )
        else:
            parts.append(f"{v['VariantName']}: real-time, {running} instances")
    if described.get("AsyncInferenceConfig"):
        kind = "async"
    else:
        kind = "serverless" if serverless_variants else "real-time"
    return "; ".join(parts) or "-", kind


@click.command()
@target_options
def endpoints(target: Target) -> None:
    """List endpoints as a table."""
    sm, _ = target.clients()
    try:
        rows = []
        for page in sm.get_paginator("list_endpoints").paginate():
            rows.extend(page["Endpoints"])
    except Exception as exc:
        fail(exc)
        return
    # KIND stays last and one word: scripts read it as the line's last field.
    header = ("NAME", "STATUS", "CREATED", "MODIFIED", "VARIANTS", "KIND")
    table = [header] + [
        (
            e["EndpointName"],
            e["EndpointStatus"],
            e["CreationTime"].strftime("%Y-%m-%d %H:%M:%S"),
            e["LastModifiedTime"].strftime("%Y-%m-%d %H:%M:%S"),
            *_described(sm, e["EndpointName"]),
        )
        for e in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@click.command()
@click.argument("name")
@click.option("--keep-config", is_flag=True, help="Keep the endpoint config and model.")
@target_options
def delete(name: str, keep_config: bool, target: Target) -> None:
    """Delete endpoint NAME (and the config and model of the same name)."""
    sm, _ = target.clients()
    from botocore.exceptions import ClientError

    try:
        sm.delete_endpoint(EndpointName=name)
        click.echo(f"endpoint {name}: Deleting")
    except Exception as exc:
        fail(exc)
    if keep_config:
        return
    for call, key in (
        (sm.delete_endpoint_config, "EndpointConfigName"),
        (sm.delete_model, "ModelName"),
    ):
        # Created separately under another name: nothing to clean up.
        with contextlib.suppress(ClientError):
            call(**{key: name})


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@target_options
def models(name: str, as_json: bool, target: Target) -> None:
    """List the models loaded on each instance of multi-model endpoint NAME."""
    import json

    out = target.native("GET", f"/api/endpoints/{name}/models")
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
            click.echo(
                f"  {m['ModelName']:<40} {(m.get('MemoryBytes') or 0) / 1024:>10.1f} KiB  "
                f"{_tier_text(m.get('CompiledTier'))}"
            )


def _tier_text(tier: dict[str, Any] | None) -> str:
    """The compiled tier's state of one model, for `models` (blank from other servers)."""
    if not tier:
        return ""
    state = str(tier.get("state"))
    if state == "compiled":
        return f"compiled (calls up to {tier.get('maxRows')} rows)"
    if state == "failed":
        return f"not compiled: {tier.get('reason')}"
    return state
