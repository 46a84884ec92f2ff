"""Processing jobs (CreateProcessingJob and friends) for the model-monitor analyzer image.

SageMaker runs any container as a processing job; modelhost runs the one image Model
Monitor needs, `sagemaker-model-monitor-analyzer`, in-process (monitor/analyzer.py) and
refuses other images with a ValidationException until generic processing exists.

The analyzer reads its job from the environment and container paths, as the real image
does: `dataset_source` (a LocalPath of one ProcessingInput), `dataset_format`,
`output_path` (a LocalPath of one ProcessingOutput); with `baseline_constraints` and
`baseline_statistics` it is a monitoring run over data capture (`start_time`, `end_time`),
without them a baseline (`suggest_baseline`). Container paths are mapped back to the
inputs' and outputs' S3Uri (s3:// or a local path).

A job is a PROCESSING_JOB record (the accepted request plus times and outcome); one
asyncio task runs the analysis in a thread. A job InProgress when the server stopped runs
again from the start when it comes back (the analysis is idempotent); Stopping becomes
Stopped.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from modelhost.control.durable import DurableJobs
from modelhost.control.listing import job_list_response
from modelhost.errors import ModelhostError, ValidationException
from modelhost.jobs import clarify_baseline, explainability
from modelhost.jobs.processing_analysis import Analysis, mounts, resolve
from modelhost.monitor.dataset import DatasetError, parse_format
from modelhost.resources.status import ProcessingJobStatus as Status
from modelhost.settings import Settings
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.locations import confine
from modelhost.store.metadata import Kind, MetadataStore, Record
from modelhost.store.outputs import Locations

log = logging.getLogger("modelhost.jobs")

ANALYZER_IMAGE = "sagemaker-model-monitor-analyzer"
_ECHOED = (
    "ProcessingInputs",
    "ProcessingOutputConfig",
    "ProcessingResources",
    "StoppingCondition",
    "AppSpecification",
    "Environment",
    "NetworkConfig",
    "RoleArn",
    "ExperimentConfig",
)

Handler = Callable[[dict[str, Any]], dict[str, Any]]
Publish = Callable[[dict[str, Any]], object]  # CloudWatch PutMetricData parameters


class ProcessingJobs(DurableJobs):
    """CreateProcessingJob, DescribeProcessingJob, ListProcessingJobs, StopProcessingJob."""

    kind = Kind.PROCESSING_JOB
    arn_type = "processing-job"
    directory = "processing-jobs"
    noun = "processing job"
    end_time_key = "ProcessingEndTime"
    active = (Status.IN_PROGRESS,)
    stopping = Status.STOPPING
    stopped = Status.STOPPED
    failed = Status.FAILED
    failures = (ModelhostError, ValueError, KeyError)
    failure_prefix = "Algorithm Error: "
    log = log

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        locations: Locations,
        publish: Publish | None = None,
    ) -> None:
        super().__init__(settings, store)
        self.locations = locations
        self.publish = publish
        self.analysis = Analysis(
            locations,
            explainability.Explainability(store, lambda: ArtifactStore(settings)),
        )
        self.operations: dict[str, Handler] = {
            "CreateProcessingJob": self.create_processing_job,
            "DescribeProcessingJob": self.describe_processing_job,
            "ListProcessingJobs": self.list_processing_jobs,
            "StopProcessingJob": self.stop_processing_job,
        }

    # --- operations -----------------------------------------------------------------

    def create_processing_job(self, p: dict[str, Any]) -> dict[str, Any]:
        self.check(p)
        return {"ProcessingJobArn": self.submit(p["ProcessingJobName"], p, p.get("Tags"))}

    def check(self, p: dict[str, Any]) -> None:
        """The analyzer image, its environment, and locations that may be used."""
        env = p.get("Environment") or {}
        explainability.check(p, ANALYZER_IMAGE, lambda path: resolve(p, path, "ProcessingInputs"))
        if clarify_baseline.is_baseline(p):
            clarify_baseline.check(lambda path, member: resolve(p, path, member))
            self._confine(p)
            return
        try:
            parse_format(env.get("dataset_format"))
        except DatasetError as exc:
            raise ValidationException(f"Environment.dataset_format: {exc}") from None
        if env.get("analysis_type") == "MODEL_QUALITY" and env.get("baseline_constraints"):
            if not env.get("ground_truth_source"):
                raise ValidationException(
                    "Environment.ground_truth_source is required by a MODEL_QUALITY run (a "
                    "container path under the ground truth's ProcessingInput LocalPath)."
                )
            resolve(p, env["ground_truth_source"], "ProcessingInputs")
        for key in ("dataset_source", "output_path"):
            if not env.get(key):
                raise ValidationException(
                    f"Environment.{key} is required by the model monitor analyzer."
                )
        resolve(p, env["dataset_source"], "ProcessingInputs")
        resolve(p, env["output_path"], "ProcessingOutputConfig")
        self._confine(p)

    def _confine(self, p: dict[str, Any]) -> None:
        settings = self.settings
        for member, url in _locations(p):
            confine(url, settings.allowed_data_prefixes, member, [settings.home])

    def submit(
        self,
        name: str,
        p: dict[str, Any],
        tags: list[Any] | None = None,
        schedule_arn: str | None = None,
    ) -> str:
        spec: dict[str, Any] = {"Request": {k: copy.deepcopy(p[k]) for k in _ECHOED if k in p}}
        if schedule_arn:
            spec["MonitoringScheduleArn"] = schedule_arn
        return self._submit(name, spec, tags, Status.IN_PROGRESS).arn

    def describe_processing_job(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(p["ProcessingJobName"])
        out: dict[str, Any] = {
            **rec.spec["Request"],
            **self._summary(rec),
        }
        for key in ("ProcessingStartTime", "MonitoringScheduleArn"):
            if rec.spec.get(key):
                out[key] = rec.spec[key]
        return out

    def _summary(self, rec: Record) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ProcessingJobName": rec.name,
            "ProcessingJobArn": rec.arn,
            "ProcessingJobStatus": rec.status,
            "CreationTime": rec.created_s,
            "LastModifiedTime": rec.modified_s,
        }
        if rec.failure_reason:
            out["FailureReason"] = rec.failure_reason
        for key in ("ProcessingEndTime", "ExitMessage"):
            if rec.spec.get(key):
                out[key] = rec.spec[key]
        return out

    def list_processing_jobs(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [self._summary(r) for r in self.store.list(Kind.PROCESSING_JOB)]
        return job_list_response(items, p, "Processing")

    def stop_processing_job(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(p["ProcessingJobName"])
        if rec.status != Status.IN_PROGRESS:
            raise ValidationException(
                f"Processing job {rec.name} is {rec.status}; only an InProgress job can be stopped."
            )
        self._stop(rec)
        return {}

    # --- runs -----------------------------------------------------------------------

    async def _work(self, name: str) -> str:
        rec = self._get(name)
        self._set_status(rec, Status.IN_PROGRESS, ProcessingStartTime=time.time())
        exit_message, metrics = await asyncio.to_thread(self.analyze, rec.spec["Request"])
        if self.publish is not None:
            # On the event loop: the series store's writers live there.
            for params in metrics:
                self.publish(params)
        return exit_message

    async def _succeeded(self, name: str, outcome: str) -> None:
        self._finish(name, Status.COMPLETED, None, ExitMessage=outcome)

    def _finish(self, name: str, status: StrEnum, reason: str | None = None, **spec: Any) -> None:
        rec = self.store.get(Kind.PROCESSING_JOB, name)
        if rec is not None and rec.status == Status.STOPPING and status != Status.STOPPED:
            return  # a stop overtakes the end the run was about to write
        super()._finish(name, status, reason, **spec)

    def analyze(self, request: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """Run the analyzer for `request` (jobs/processing_analysis.py)."""
        return self.analysis.run(request)


def _locations(p: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for member in ("ProcessingInputs", "ProcessingOutputConfig"):
        out += [(f"{member}.s3Uri", url) for _, url in mounts(p, member)]
    return out
