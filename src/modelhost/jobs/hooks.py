"""What happens when a transform job's records are all written: its data capture
(jobs/batch_capture.py) and the prediction-store load.

A job created with a prediction-store option (`PredictionStore: {StoreName, KeyColumn}` in
the native API, `--store/--key` in the CLI, or the `modelhost:prediction-store` /
`modelhost:prediction-key` tags) loads its outputs into that store, keyed by the input
column, as a new run, before the job is reported Completed: once the waiter returns,
lookups see the new predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelhost.errors import ValidationException
from modelhost.jobs import batch_capture
from modelhost.jobs.objects import ObjectIO
from modelhost.settings import Settings
from modelhost.store.outputs import Locations
from modelhost.store.predictions import PredictionStore, RunInfo
from modelhost.store.predictions.loader import load_transform_output


@dataclass(frozen=True)
class CompletedJob:
    """What the hook gets: the job's name, its accepted request, the prediction-store
    option (None when not asked for) and `{relative input name: output URL}`."""

    name: str
    request: dict[str, Any]
    prediction_store: dict[str, str] | None
    outputs: dict[str, str] = field(default_factory=dict)


def load_predictions(
    job: CompletedJob, settings: Settings, backend: PredictionStore | None
) -> RunInfo | None:
    """Load the job's outputs into its prediction store (None when it has no such option).

    Runs off the event loop. Raises (ValidationException, ArtifactError, the backend's
    errors) when the outputs cannot be loaded; the current run of the store stays."""
    if job.prediction_store is None:
        return None
    request = job.request
    source = request["TransformInput"]["DataSource"]["S3DataSource"]
    if source.get("S3DataType") == "ManifestFile":
        raise ValidationException(
            "The prediction store loads from an S3Prefix input; this job reads a manifest. "
            "Load its output with `modelhost predictions load` and the objects' prefix."
        )
    output = request["TransformOutput"]
    return load_transform_output(
        job.prediction_store["StoreName"],
        job.prediction_store["KeyColumn"],
        source["S3Uri"],
        output["S3OutputPath"],
        request["TransformInput"].get("ContentType") or "text/csv",
        settings,
        accept=output.get("Accept"),
        prediction_store=backend,
    )


def capture_data(job: CompletedJob, settings: Settings, start_s: float) -> None:
    """The job's DataCaptureConfig: its input and output manifests (and, asked for,
    inference ids in the outputs). Runs off the event loop; raises when it cannot write."""
    config = job.request.get("DataCaptureConfig")
    if not config:
        return
    source = job.request["TransformInput"]["DataSource"]["S3DataSource"]
    inputs = ObjectIO(settings.s3_endpoint_url).list_inputs(source["S3DataType"], source["S3Uri"])
    locations = Locations(settings.s3_endpoint_url)
    batch_capture.write(locations, config, inputs, job.outputs, start_s)
