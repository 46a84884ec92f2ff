"""The `modelhost` command: one module per command group, one shared module (`common`).

`serve` runs the server; the other commands are clients that talk to a running server
through boto3 or the native API, so the CLI never bypasses the API. Every command takes
`--url` and `--home` (see `common.Target`).
"""

from __future__ import annotations

import click

from modelhost import __version__
from modelhost.cli import (
    advise,
    cluster,
    containers,
    deployments,
    edge,
    endpoints,
    jobs,
    keys,
    loadtest,
    logs,
    metrics,
    predictions,
    recommend,
    replay,
    scaling,
    server,
)


@click.group()
@click.version_option(__version__, prog_name="modelhost")
def main() -> None:
    """modelhost: host models behind SageMaker-compatible endpoints."""


for _command in (
    server.serve,
    endpoints.deploy,
    endpoints.invoke,
    endpoints.endpoints,
    endpoints.delete,
    endpoints.models,
    server.demo,
    containers.deploy_containers,
    jobs.transform,
    jobs.jobs,
    deployments.alarms,
    deployments.events,
    deployments.shadow_report,
    deployments.promote_shadow,
    deployments.routing,
    deployments.reward,
    metrics.metrics,
    scaling.scaling,
    logs.logs,
    edge.edge,
    predictions.predictions,
    keys.credentials,
    keys.keys,
    cluster.cluster,
    loadtest.loadtest,
    advise.advise,
    recommend.recommend,
    replay.replay,
):
    main.add_command(_command)

__all__ = ["main"]
