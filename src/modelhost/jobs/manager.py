"""The transform-job operations (SageMaker JSON 1.1), persistence and resume on startup.

A job is a TRANSFORM_JOB record in the metadata store: `spec` holds the accepted request,
a snapshot of the model (so a restart resumes even if the model was deleted since), the
prediction-store option, timestamps and one entry per finished object. A job that is
InProgress when the server starts is resumed; one that was Stopping becomes Stopped.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import shutil
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from modelhost.control.durable import DurableJobs
from modelhost.control.listing import job_list_response
from modelhost.control.validation import validate_input
from modelhost.errors import FencedOut, ModelhostError, ResourceNotFound, ValidationException
from modelhost.fleet.manager import FleetManager
from modelhost.jobs import batch_capture
from modelhost.jobs.hooks import CompletedJob, capture_data, load_predictions
from modelhost.jobs.instances import JobFailed
from modelhost.jobs.pool import WarmPool
from modelhost.jobs.requests import check_request, prediction_store_option
from modelhost.jobs.runner import TransformRunner
from modelhost.resources.names import arn
from modelhost.resources.status import TransformJobStatus
from modelhost.settings import Settings
from modelhost.store.coordination import WorkClaims
from modelhost.store.fencing import ClaimFence
from modelhost.store.metadata import Kind, MetadataStore, Record
from modelhost.store.predictions import PredictionStore

log = logging.getLogger("modelhost.jobs")

Handler = Callable[[dict[str, Any]], dict[str, Any]]

_ECHOED = (
    "ModelName",
    "MaxConcurrentTransforms",
    "ModelClientConfig",
    "MaxPayloadInMB",
    "BatchStrategy",
    "Environment",
    "TransformInput",
    "TransformOutput",
    "DataCaptureConfig",
    "TransformResources",
    "DataProcessing",
    "ExperimentConfig",
)


class TransformJobs(DurableJobs):
    """CreateTransformJob, DescribeTransformJob, ListTransformJobs, StopTransformJob, and
    the runs behind them (one asyncio task per job in this process)."""

    kind = Kind.TRANSFORM_JOB
    arn_type = "transform-job"
    directory = "transform-jobs"
    noun = "transform job"
    end_time_key = "TransformEndTime"
    active = (TransformJobStatus.IN_PROGRESS,)
    stopping = TransformJobStatus.STOPPING
    stopped = TransformJobStatus.STOPPED
    failed = TransformJobStatus.FAILED
    failures = (JobFailed,)
    # A runner that lost its claim (ClaimFence) stops; the gateway that claimed it resumes.
    abandons = (FencedOut,)
    log = log

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        fleets: FleetManager,
        pool: WarmPool | None = None,
    ) -> None:
        # Several gateways: the one that claims a job runs it; a dead one's are resumed.
        self.job_claims = WorkClaims(settings.metadata_url)
        super().__init__(settings, store, self.job_claims)
        # The gateway's one fleet manager: job instances are started and stopped there.
        self.fleets = fleets
        self._runners: dict[str, TransformRunner] = {}
        self.pool = pool if pool is not None else WarmPool(settings.transform_keep_alive_s)
        # Where jobs with a prediction-store option load their outputs (the gateway's
        # store, shared with the lookup API); None opens the one the settings name.
        self.predictions: PredictionStore | None = None
        self.operations: dict[str, Handler] = {
            "CreateTransformJob": self.create_transform_job,
            "DescribeTransformJob": self.describe_transform_job,
            "ListTransformJobs": self.list_transform_jobs,
            "StopTransformJob": self.stop_transform_job,
        }

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        validate_input(operation, params)
        return self.operations[operation](params)

    # --- lifecycle ------------------------------------------------------------------

    async def stop(self) -> None:
        """Server shutdown: runs are cancelled but stay InProgress, to resume next start."""
        await super().stop()
        await self.pool.close()

    # --- operations -----------------------------------------------------------------

    def _not_found(self, name: str) -> ModelhostError:
        return ValidationException(f'Could not find job to update with name "{name}".')

    def _duplicate(self, rec: Record) -> ModelhostError:
        return ValidationException(
            "Job name must be unique within an AWS account and region, and a job with "
            f"this name already exists ({rec.arn})"
        )

    def create_transform_job(
        self, p: dict[str, Any], prediction_store: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        check_request(p)
        batch_capture.check(p, self.settings)
        option = prediction_store_option(p.get("Tags"), prediction_store)
        model = self.store.get(Kind.MODEL, p["ModelName"])
        if model is None:
            model_arn = arn(self.settings.region, self.settings.account_id, "model", p["ModelName"])
            raise ResourceNotFound(f'Could not find model "{model_arn}".')
        now = time.time()
        spec: dict[str, Any] = {
            "Request": {k: copy.deepcopy(v) for k, v in p.items() if k in _ECHOED},
            "Model": copy.deepcopy(model.spec),
            "TransformStartTime": now,
            "Objects": {},
        }
        if option:
            spec["PredictionStore"] = option
        status = TransformJobStatus.IN_PROGRESS
        record = self._submit(p["TransformJobName"], spec, p.get("Tags"), status, now)
        return {"TransformJobArn": record.arn}

    def describe_transform_job(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(p["TransformJobName"])
        out: dict[str, Any] = {
            **rec.spec["Request"],
            "TransformJobName": rec.name,
            "TransformJobArn": rec.arn,
            "TransformJobStatus": rec.status,
            "CreationTime": rec.created_s,
            "TransformStartTime": rec.spec.get("TransformStartTime", rec.created_s),
            "LastModifiedTime": rec.modified_s,
        }
        if rec.spec.get("TransformEndTime"):
            out["TransformEndTime"] = rec.spec["TransformEndTime"]
        if rec.failure_reason:
            out["FailureReason"] = rec.failure_reason
        return out

    def extension(self, name: str) -> dict[str, Any]:
        """modelhost's own describe members: live progress, objects, prediction store."""
        rec = self._get(name)
        runner = self._runners.get(name)
        objects = rec.spec.get("Objects", {})
        if runner is not None:
            progress = runner.progress.as_dict()
        else:
            records = sum(o.get("Records", 0) for o in objects.values())
            progress = {
                "ObjectsTotal": len(objects),
                "ObjectsDone": len(objects),
                "RecordsDone": records,
                "RecordsPlanned": records,
                "BytesTotal": 0,
                "BytesDone": 0,
            }
        ext: dict[str, Any] = {"Progress": progress, "Objects": objects}
        if rec.spec.get("PredictionStore"):
            ext["PredictionStore"] = rec.spec["PredictionStore"]
        return ext

    def list_transform_jobs(self, p: dict[str, Any]) -> dict[str, Any]:
        items = []
        for r in self.store.list(Kind.TRANSFORM_JOB):
            item: dict[str, Any] = {
                "TransformJobName": r.name,
                "TransformJobArn": r.arn,
                "CreationTime": r.created_s,
                "LastModifiedTime": r.modified_s,
                "TransformJobStatus": r.status,
            }
            if r.spec.get("TransformEndTime"):
                item["TransformEndTime"] = r.spec["TransformEndTime"]
            if r.failure_reason:
                item["FailureReason"] = r.failure_reason
            items.append(item)
        return job_list_response(items, p, "Transform")

    def stop_transform_job(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(p["TransformJobName"])
        if rec.status != TransformJobStatus.IN_PROGRESS:
            return {}  # stopping a finished job is a no-op, as in SageMaker
        self._stop(rec)  # run by another gateway: it stops at its next finished object
        return {}

    # --- runs -----------------------------------------------------------------------

    def _launch(self, rec: Record) -> None:
        request = rec.spec["Request"]
        done = set(rec.spec.get("Objects", {}))
        runner = TransformRunner(
            self.settings,
            rec.name,
            request,
            request["ModelName"],
            rec.spec["Model"],
            self.workdir(rec.name),
            done,
            lambda rel, outcome: self._object_done(rec.name, rel, outcome),
            self.fleets,
            self.pool,
        )
        self._runners[rec.name] = runner
        super()._launch(rec)

    def _object_done(self, name: str, rel: str, outcome: dict[str, Any]) -> None:
        def record(rec: Record) -> None:
            rec.spec.setdefault("Objects", {})[rel] = outcome
            rec.modified_s = time.time()

        # Under a row lock: a Stop through another gateway is never overwritten. Only
        # while this gateway holds the job's claim: else another one may run it now.
        fence = ClaimFence(self.job_claims, Kind.TRANSFORM_JOB, name)
        rec = self.store.update(Kind.TRANSFORM_JOB, name, record, fence)
        if rec is None:
            self._get(name)  # raises as before when the job is gone
        elif rec.status == TransformJobStatus.STOPPING and name in self._runs:
            self._runs[name].cancel()  # stopped through another gateway

    async def _work(self, name: str) -> None:
        await self._runners[name].run()

    def _ended(self, name: str) -> None:
        self._runners.pop(name, None)

    async def _succeeded(self, name: str, outcome: object) -> None:
        # Objects that failed before a restart count too: the store has them all.
        objects = self._get(name).spec.get("Objects", {}).values()
        failures = [o["FailureReason"] for o in objects if o.get("Status") == "Failed"]
        if failures:
            more = f" ({len(failures) - 1} more objects failed)" if len(failures) > 1 else ""
            self._finish(name, TransformJobStatus.FAILED, failures[0] + more)
            return
        await self._complete(name)

    async def _complete(self, name: str) -> None:
        """Every object is written: the data capture and the prediction-store load (when
        the job asks for them), then Completed."""
        rec = self._get(name)
        job = CompletedJob(
            name,
            rec.spec["Request"],
            rec.spec.get("PredictionStore"),
            {rel: o["Output"] for rel, o in rec.spec["Objects"].items() if "Output" in o},
        )
        if job.request.get("DataCaptureConfig"):
            start_s = rec.spec.get("TransformStartTime", rec.created_s)
            try:
                await asyncio.to_thread(capture_data, job, self.settings, start_s)
            except Exception as exc:
                log.exception("writing the data capture of transform job %s failed", name)
                reason = f"The outputs are written, but writing their data capture failed: {exc}"
                self._finish(name, TransformJobStatus.FAILED, reason)
                return
        try:
            run = await asyncio.to_thread(load_predictions, job, self.settings, self.predictions)
        except Exception as exc:
            # The outputs are written and stay; only the load failed, and asking for it
            # made it part of the job, so the job says so rather than Completed.
            log.exception("loading the predictions of transform job %s failed", name)
            store = (job.prediction_store or {}).get("StoreName")
            self._finish(
                name,
                TransformJobStatus.FAILED,
                f"The outputs are written, but loading them into prediction store {store} "
                f"failed: {exc}",
            )
            return
        if run is not None:
            rec = self._get(name)
            rec.spec["PredictionStore"] = {**rec.spec["PredictionStore"], **run.to_api()}
            self.store.save(rec)
        self._finish(name, TransformJobStatus.COMPLETED, None)

    def _cleanup(self, name: str, status: StrEnum) -> None:
        shutil.rmtree(self.workdir(name) / "parts", ignore_errors=True)
