"""The compilation-job operations (SageMaker JSON 1.1), persistence and resume on startup.

A job is a COMPILATION_JOB record in the metadata store: `spec` holds the accepted
request, timestamps and, once done, the output. Each run is a compiler process
(`compile/worker.py`) watched by one asyncio task; a job that was STARTING or INPROGRESS
when the server stopped is compiled again from the start when it comes back (a
compilation is idempotent), one that was STOPPING becomes STOPPED.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from modelhost.compile import request as rules
from modelhost.control.durable import DurableJobs
from modelhost.control.listing import job_list_response
from modelhost.errors import ModelhostError, ValidationException
from modelhost.resources.status import CompilationJobStatus as Status
from modelhost.settings import Settings
from modelhost.store.cache_bound import Leased
from modelhost.store.metadata import Kind, MetadataStore, Record
from modelhost.store.s3 import S3Client, upload_file

log = logging.getLogger("modelhost.compile")

Handler = Callable[[dict[str, Any]], dict[str, Any]]

_ECHOED = ("RoleArn", "InputConfig", "OutputConfig", "VpcConfig", "StoppingCondition")
_ACTIVE = (Status.STARTING, Status.IN_PROGRESS)
_FINISHED = (Status.COMPLETED, Status.FAILED, Status.STOPPED)


class CompilationFailed(Exception):
    """The job fails; the message is its FailureReason."""


class CompilationJobs(DurableJobs):
    """CreateCompilationJob, DescribeCompilationJob, ListCompilationJobs,
    StopCompilationJob, DeleteCompilationJob, and the compiler runs behind them."""

    kind = Kind.COMPILATION_JOB
    arn_type = "compilation-job"
    directory = "compilation-jobs"
    noun = "compilation job"
    end_time_key = "CompilationEndTime"
    active = _ACTIVE
    stopping = Status.STOPPING
    stopped = Status.STOPPED
    failed = Status.FAILED
    failures = (CompilationFailed, ModelhostError)
    log = log

    def __init__(
        self, settings: Settings, store: MetadataStore, fetch: Callable[[str], Leased]
    ) -> None:
        super().__init__(settings, store)
        self._fetch = fetch
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self.operations: dict[str, Handler] = {
            "CreateCompilationJob": self.create_compilation_job,
            "DescribeCompilationJob": self.describe_compilation_job,
            "ListCompilationJobs": self.list_compilation_jobs,
            "StopCompilationJob": self.stop_compilation_job,
            "DeleteCompilationJob": self.delete_compilation_job,
        }

    # --- lifecycle ------------------------------------------------------------------

    async def stop(self) -> None:
        """Server shutdown: compilers are ended; their jobs stay active, to run next start."""
        for proc in list(self._procs.values()):
            _kill(proc)
        await super().stop()

    # --- operations -----------------------------------------------------------------

    def create_compilation_job(self, p: dict[str, Any]) -> dict[str, Any]:
        rules.check_request(p)
        spec = {"Request": {k: copy.deepcopy(v) for k, v in p.items() if k in _ECHOED}}
        record = self._submit(p["CompilationJobName"], spec, p.get("Tags"), Status.STARTING)
        return {"CompilationJobArn": record.arn}

    def describe_compilation_job(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(p["CompilationJobName"])
        spec = rec.spec
        out: dict[str, Any] = {
            **spec["Request"],
            "CompilationJobName": rec.name,
            "CompilationJobArn": rec.arn,
            "CompilationJobStatus": rec.status,
            "CreationTime": rec.created_s,
            "LastModifiedTime": rec.modified_s,
            "FailureReason": rec.failure_reason or "",
            "ModelArtifacts": {"S3ModelArtifacts": spec.get("S3ModelArtifacts", "")},
        }
        for key in ("CompilationStartTime", "CompilationEndTime", "InferenceImage"):
            if spec.get(key):
                out[key] = spec[key]
        if spec.get("ArtifactDigest"):
            out["ModelDigests"] = {"ArtifactDigest": spec["ArtifactDigest"]}
        if spec.get("InputShape"):
            out["DerivedInformation"] = {
                "DerivedDataInputConfig": json.dumps({"data": spec["InputShape"]})
            }
        return out

    def report(self, name: str) -> dict[str, Any] | None:
        """modelhost's own detail: both targets' exactness and measured latency."""
        report: dict[str, Any] | None = self._get(name).spec.get("Report")
        return report

    def list_compilation_jobs(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [self._summary(r) for r in self.store.list(Kind.COMPILATION_JOB)]
        return job_list_response(items, p, "Compilation")

    def _summary(self, r: Record) -> dict[str, Any]:
        target = r.spec["Request"]["OutputConfig"]
        item: dict[str, Any] = {
            "CompilationJobName": r.name,
            "CompilationJobArn": r.arn,
            "CreationTime": r.created_s,
            "LastModifiedTime": r.modified_s,
            "CompilationJobStatus": r.status,
        }
        if target.get("TargetDevice"):
            item["CompilationTargetDevice"] = target["TargetDevice"]
        for key, value in (target.get("TargetPlatform") or {}).items():
            item[f"CompilationTargetPlatform{key}"] = value
        for key in ("CompilationStartTime", "CompilationEndTime"):
            if r.spec.get(key):
                item[key] = r.spec[key]
        return item

    def stop_compilation_job(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(p["CompilationJobName"])
        if rec.status not in _ACTIVE:
            return {}  # stopping a finished job changes nothing, as in SageMaker
        self._stop(rec)
        return {}

    def delete_compilation_job(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(p["CompilationJobName"])
        if rec.status not in _FINISHED:
            raise ValidationException(
                f"Compilation job {rec.name} is {rec.status}: only a COMPLETED, FAILED or "
                "STOPPED job can be deleted; stop it first."
            )
        self.store.delete(Kind.COMPILATION_JOB, rec.name)
        shutil.rmtree(self.workdir(rec.name), ignore_errors=True)
        return {}

    # --- runs -----------------------------------------------------------------------

    async def _work(self, name: str) -> dict[str, Any]:
        rec = self._get(name)
        self._set_status(rec, Status.IN_PROGRESS, CompilationStartTime=time.time())
        return await self._compile(rec)

    def _interrupt(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc is not None:
            _kill(proc)

    def _ended(self, name: str) -> None:
        self._procs.pop(name, None)

    async def _succeeded(self, name: str, outcome: dict[str, Any]) -> None:
        self._finish(name, Status.COMPLETED, None, **outcome)

    async def _compile(self, rec: Record) -> dict[str, Any]:
        request = rec.spec["Request"]
        cfg = request["InputConfig"]
        # Leased while the worker reads it: the bounded artifact cache keeps it meanwhile.
        with await asyncio.to_thread(self._fetch, cfg["S3Uri"]) as model_dir:
            return await self._compile_dir(rec, model_dir)

    async def _compile_dir(self, rec: Record, model_dir: Path) -> dict[str, Any]:
        request = rec.spec["Request"]
        cfg = request["InputConfig"]
        work = self.workdir(rec.name)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        shape = rules.input_shape(cfg.get("DataInputConfig"))
        job = {
            "ModelDir": str(model_dir),
            "Framework": cfg["Framework"],
            "InputShape": shape,
            "WorkDir": str(work),
            "TimeoutSeconds": rules.max_runtime_s(request),
            "SourceDigest": model_dir.name,
            "TargetDevice": rules.target_name(request["OutputConfig"]),
        }
        result = await self._worker(rec.name, job, work, rules.max_runtime_s(request))
        if result["Status"] != "COMPLETED":
            raise CompilationFailed(result.get("FailureReason") or "compilation failed")
        url = rules.output_url(cfg["S3Uri"], request["OutputConfig"])
        await asyncio.to_thread(_upload, Path(result["Artifact"]), url, self.settings)
        report = result["Report"]
        return {
            "S3ModelArtifacts": url,
            "ArtifactDigest": result["Digest"],
            "InferenceImage": rules.inference_image(
                report["source_framework"], self.settings.region
            ),
            "InputShape": report["input_shape"],
            "Report": {k: report[k] for k in ("backend", "targets", "native_latency_us")},
        }

    async def _worker(
        self, name: str, job: dict[str, Any], work: Path, timeout_s: float
    ) -> dict[str, Any]:
        (work / "request.json").write_text(json.dumps(job))
        result_path = work / "result.json"
        with open(work / "compile.log", "ab") as log_file:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "modelhost.compile.worker",
                str(work / "request.json"),
                str(result_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )
        self._procs[name] = proc
        try:
            code = await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            _kill(proc)
            await proc.wait()
            raise CompilationFailed(
                f"The compilation did not finish within StoppingCondition.MaxRuntimeInSeconds "
                f"({timeout_s:.0f} s)."
            ) from None
        except asyncio.CancelledError:
            _kill(proc)
            raise
        if code != 0 or not result_path.is_file():
            tail = (work / "compile.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise CompilationFailed(
                f"The compiler process exited with code {code}: {' | '.join(tail)}"
            )
        outcome: dict[str, Any] = json.loads(result_path.read_text())
        return outcome

    def _cleanup(self, name: str, status: StrEnum) -> None:
        if status == Status.COMPLETED:
            (self.workdir(name) / "artifact.tar.gz").unlink(missing_ok=True)


def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


def _upload(archive: Path, url: str, settings: Settings) -> None:
    if url.startswith("s3://"):
        upload_file(S3Client(settings.s3_endpoint_url), archive, url, "OutputConfig")
        return
    target = Path(url.removeprefix("file://")).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(archive, tmp)
    tmp.replace(target)
