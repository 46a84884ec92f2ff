"""`modelhost deploy-containers`: a model with several Containers, end to end, through boto3."""

from __future__ import annotations

import sys
from typing import Any

import click

from modelhost.cli.common import Target, absolute_location, create_endpoint, fail, target_options


@click.command("deploy-containers")
@click.argument("name")
@click.option(
    "--container",
    "containers",
    multiple=True,
    required=True,
    metavar="HOSTNAME=ARTIFACT",
    help="A container, in pipeline order (repeatable, up to 15).",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="HOSTNAME=IMAGE",
    help="A container's image (repeatable); default: detected from its artifact.",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="HOSTNAME:KEY=VALUE",
    help="A container's environment variable (repeatable).",
)
@click.option(
    "--mode",
    type=click.Choice(["Serial", "Direct"]),
    default="Serial",
    show_default=True,
    help="Serial: an inference pipeline; Direct: invoke one container by host name.",
)
@click.option("--instances", type=int, default=1, show_default=True)
@click.option("--instance-type", default="ml.m5.large", show_default=True)
@click.option(
    "--timeout", type=float, default=600, show_default=True, help="Seconds to wait for InService."
)
@target_options
def deploy_containers(
    name: str,
    containers: tuple[str, ...],
    images: tuple[str, ...],
    env: tuple[str, ...],
    mode: str,
    instances: int,
    instance_type: str,
    timeout: float,
    target: Target,
) -> None:
    """Deploy a multi-container model NAME (a serial pipeline or Direct) and wait."""
    defs = container_definitions(containers, images, env)
    sm, _ = target.clients()
    try:
        sm.create_model(
            ModelName=name,
            Containers=list(defs.values()),
            InferenceExecutionConfig={"Mode": mode},
        )
        create_endpoint(sm, name, instances, instance_type)
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name,
            WaiterConfig={"Delay": 0.5, "MaxAttempts": max(1, int(timeout / 0.5))},
        )
    except Exception as exc:
        from botocore.exceptions import WaiterError

        if not isinstance(exc, WaiterError):
            fail(exc)
        reason = sm.describe_endpoint(EndpointName=name).get("FailureReason")
        click.echo(f"endpoint {name}: not InService: {reason or exc}", err=True)
        sys.exit(1)
    click.echo(f"endpoint {name}: InService ({mode}: {', '.join(defs)})")


def container_definitions(
    containers: tuple[str, ...], images: tuple[str, ...], env: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """`Containers` entries by host name from the HOSTNAME=... options."""
    defs: dict[str, dict[str, Any]] = {}
    for item in containers:
        host, sep, artifact = item.partition("=")
        if not sep or not host or not artifact:
            raise click.UsageError(f"--container {item!r}: expected HOSTNAME=ARTIFACT")
        defs[host] = {"ContainerHostname": host, "ModelDataUrl": absolute_location(artifact)}
    for opt, items in (("--image", images), ("--env", env)):
        for item in items:
            host, sep, value = item.partition("=" if opt == "--image" else ":")
            if host not in defs or not sep or not value:
                raise click.UsageError(f"{opt} {item!r}: expected one of {', '.join(defs)}")
            if opt == "--image":
                defs[host]["Image"] = value
            else:
                key, _, val = value.partition("=")
                defs[host].setdefault("Environment", {})[key] = val
    return defs
