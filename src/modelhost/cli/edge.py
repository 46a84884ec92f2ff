"""`modelhost edge package`: a compiled model as a folder that serves without modelhost."""

from __future__ import annotations

import sys
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelhost.cli.common import Target, fail, target_options

if TYPE_CHECKING:
    from modelhost.store.cache_bound import Leased


@click.group()
def edge() -> None:
    """Edge packages: serve a compiled model on a machine without modelhost."""


def _artifact_url(source: str, target: Target) -> str:
    """A local path as it is, else the artifact of a compilation job or model by that name."""
    if Path(source).expanduser().exists() or "://" in source:
        return source
    from botocore.exceptions import ClientError

    sm = target.client("sagemaker")
    try:
        job = sm.describe_compilation_job(CompilationJobName=source)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFound":
            raise
    else:
        if job["CompilationJobStatus"] != "COMPLETED":
            raise click.ClickException(
                f"compilation job {source} is {job['CompilationJobStatus']}"
                + (f": {job.get('FailureReason')}" if job.get("FailureReason") else "")
            )
        return str(job["ModelArtifacts"]["S3ModelArtifacts"])
    model = sm.describe_model(ModelName=source)
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    if not container.get("ModelDataUrl"):
        raise click.ClickException(f"model {source} has no ModelDataUrl")
    return str(container["ModelDataUrl"])


def _unpacked(artifact: str, scratch: Path, target: Target) -> Leased:
    """The artifact's folder; a cache entry stays leased until the result is closed (the
    gateway's bounded cache must not evict it while it is packaged)."""
    from modelhost.store.artifacts import ArtifactStore
    from modelhost.store.cache_bound import Leased

    local = Path(artifact.removeprefix("file://")).expanduser()
    if local.is_dir():
        return Leased(local)
    if local.is_file() and tarfile.is_tarfile(local):
        with tarfile.open(local) as tar:
            tar.extractall(scratch, filter="data")
        return Leased(scratch)
    return ArtifactStore(target.settings).use(artifact)


@edge.command("package")
@click.argument("source", metavar="MODEL_OR_COMPILATION_JOB")
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path), help="Folder to create."
)
@click.option(
    "--capture-to",
    default=None,
    help="URL the edge server uploads its data capture to, e.g. "
    "http://gateway:8080/api/edge-captures/NAME (store-and-forward).",
)
@target_options
def package_command(source: str, out: Path, capture_to: str | None, target: Target) -> None:
    """Package a compiled model: a compilation job's name, a model's name, or the path of
    a compiled artifact (folder or model.tar.gz). Writes OUT and OUT.tar.gz."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    from modelhost.compile.edge import package
    from modelhost.compile.sources import CompileError

    try:
        artifact = _artifact_url(source, target)
        with (
            tempfile.TemporaryDirectory() as scratch,
            _unpacked(artifact, Path(scratch), target) as folder,
        ):
            archive = package(folder, out, capture_to)
    except (ClientError, EndpointConnectionError) as exc:
        fail(exc)
    except CompileError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"wrote {out}/ and {archive}")
    click.echo(f"run it with: python3 {out}/serve.py --port 8080")
