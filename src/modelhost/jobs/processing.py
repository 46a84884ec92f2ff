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
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from modelhost.control.listing import list_page
from modelhost.errors import ModelhostError, ResourceInUse, ResourceNotFound, ValidationException
from modelhost.jobs import explainability
from modelhost.monitor import analyzer
from modelhost.monitor.dataset import DatasetError, parse_format
from modelhost.resources.names import arn
from modelhost.resources.status import ProcessingJobStatus as Status
from modelhost.settings import Settings
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.locations import confine
from modelhost.store.metadata import AlreadyExists, Kind, MetadataStore, Record
from modelhost.store.outputs import Locations, join

log = logging.getLogger("modelhost.jobs")

ANALYZER_IMAGE = "sagemaker-model-monitor-analyzer"
DATA_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
MODEL_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"
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
_MAX_REASON = 1024

Handler = Callable[[dict[str, Any]], dict[str, Any]]
Publish = Callable[[dict[str, Any]], object]  # CloudWatch PutMetricData parameters


class ProcessingJobs:
    """CreateProcessingJob, DescribeProcessingJob, ListProcessingJobs, StopProcessingJob."""

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        locations: Locations,
        publish: Publish | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.locations = locations
        self.publish = publish
        self._runs: dict[str, asyncio.Task[None]] = {}
        self.explainability = explainability.Explainability(store, lambda: ArtifactStore(settings))
        self.operations: dict[str, Handler] = {
            "CreateProcessingJob": self.create_processing_job,
            "DescribeProcessingJob": self.describe_processing_job,
            "ListProcessingJobs": self.list_processing_jobs,
            "StopProcessingJob": self.stop_processing_job,
        }

    async def start(self) -> None:
        for rec in self.store.list(Kind.PROCESSING_JOB):
            if rec.status == Status.STOPPING:
                self._finish(rec.name, Status.STOPPED)
            elif rec.status == Status.IN_PROGRESS:
                log.info("resuming processing job %s", rec.name)
                self._launch(rec.name)

    async def stop(self) -> None:
        tasks = list(self._runs.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runs.clear()

    def arn(self, name: str) -> str:
        return arn(self.settings.region, self.settings.account_id, "processing-job", name)

    def get(self, name: str) -> Record:
        rec = self.store.get(Kind.PROCESSING_JOB, name)
        if rec is None:
            raise ResourceNotFound(f"Processing job {name} does not exist ({self.arn(name)}).")
        return rec

    # --- operations -----------------------------------------------------------------

    def create_processing_job(self, p: dict[str, Any]) -> dict[str, Any]:
        self.check(p)
        return {"ProcessingJobArn": self.submit(p["ProcessingJobName"], p, p.get("Tags"))}

    def check(self, p: dict[str, Any]) -> None:
        """The analyzer image, its environment, and locations that may be used."""
        env = p.get("Environment") or {}
        explainability.check(p, ANALYZER_IMAGE, lambda path: _resolve(p, path, "ProcessingInputs"))
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
            _resolve(p, env["ground_truth_source"], "ProcessingInputs")
        for key in ("dataset_source", "output_path"):
            if not env.get(key):
                raise ValidationException(
                    f"Environment.{key} is required by the model monitor analyzer."
                )
        _resolve(p, env["dataset_source"], "ProcessingInputs")
        _resolve(p, env["output_path"], "ProcessingOutputConfig")
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
        now = time.time()
        spec: dict[str, Any] = {"Request": {k: copy.deepcopy(p[k]) for k in _ECHOED if k in p}}
        if schedule_arn:
            spec["MonitoringScheduleArn"] = schedule_arn
        record = Record(
            Kind.PROCESSING_JOB, name, self.arn(name), spec, list(tags or []),
            Status.IN_PROGRESS, None, now, now,
        )  # fmt: skip
        try:
            self.store.create(record)
        except AlreadyExists:
            raise ResourceInUse(
                f"Processing job {name} already exists ({record.arn}); job names are unique "
                "within an account and region."
            ) from None
        self._launch(name)
        return record.arn

    def describe_processing_job(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.get(p["ProcessingJobName"])
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
        page, token = list_page(
            items,
            p,
            name_key="ProcessingJobName",
            sort_keys={
                "Name": "ProcessingJobName",
                "CreationTime": "CreationTime",
                "Status": "ProcessingJobStatus",
            },
            status_key="ProcessingJobStatus",
        )
        out: dict[str, Any] = {"ProcessingJobSummaries": page}
        if token:
            out["NextToken"] = token
        return out

    def stop_processing_job(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.get(p["ProcessingJobName"])
        if rec.status != Status.IN_PROGRESS:
            raise ValidationException(
                f"Processing job {rec.name} is {rec.status}; only an InProgress job can be stopped."
            )
        self._set(rec, Status.STOPPING)
        task = self._runs.get(rec.name)
        if task is not None:
            task.cancel()
        else:
            self._finish(rec.name, Status.STOPPED)
        return {}

    # --- runs -----------------------------------------------------------------------

    def _set(self, rec: Record, status: Status, **spec: Any) -> None:
        rec.status = status
        rec.spec.update(spec)
        rec.modified_s = time.time()
        self.store.save(rec)

    def _launch(self, name: str) -> None:
        self._runs[name] = asyncio.ensure_future(self._run(name))

    async def _run(self, name: str) -> None:
        try:
            rec = self.get(name)
            self._set(rec, Status.IN_PROGRESS, ProcessingStartTime=time.time())
            exit_message, metrics = await asyncio.to_thread(self.analyze, rec.spec["Request"])
            if self.publish is not None:
                # On the event loop: the series store's writers live there.
                for params in metrics:
                    self.publish(params)
        except asyncio.CancelledError:
            current = self.store.get(Kind.PROCESSING_JOB, name)
            if current is not None and current.status == Status.STOPPING:
                self._finish(name, Status.STOPPED)
            raise
        except (ModelhostError, ValueError, KeyError) as exc:
            self._finish(name, Status.FAILED, f"Algorithm Error: {exc}")
            return
        except Exception as exc:
            log.exception("processing job %s failed", name)
            self._finish(name, Status.FAILED, f"Internal error: {exc}")
            return
        finally:
            self._runs.pop(name, None)
        self._finish(name, Status.COMPLETED, None, ExitMessage=exit_message)

    def _finish(self, name: str, status: Status, reason: str | None = None, **spec: Any) -> None:
        rec = self.store.get(Kind.PROCESSING_JOB, name)
        if rec is None or (rec.status == Status.STOPPING and status != Status.STOPPED):
            return
        if reason:
            rec.failure_reason = reason[:_MAX_REASON]
        self._set(rec, status, ProcessingEndTime=time.time(), **spec)

    def analyze(self, request: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """Run the analyzer for `request`: the job's ExitMessage and the CloudWatch
        PutMetricData calls it publishes."""
        env = request.get("Environment") or {}
        source = _resolve(request, env["dataset_source"], "ProcessingInputs")
        output = _resolve(request, env["output_path"], "ProcessingOutputConfig")
        files = self.locations.list(source, "ProcessingInputs")
        if env.get("baseline_constraints"):
            start, end = _time(env.get("start_time")), _time(env.get("end_time"))
            files = [url for url in files if analyzer.file_in_window(url, start, end)]
        texts = (self.locations.read(url, "ProcessingInputs").decode("utf-8") for url in files)
        if not env.get("baseline_constraints"):
            fmt = parse_format(env.get("dataset_format"))
            if env.get("analysis_type") == "MODEL_QUALITY":
                stats, constraints = analyzer.suggest_quality_baseline(texts, fmt, env)
            else:
                stats, constraints = analyzer.suggest_baseline(texts, fmt)
            self._write(output, "statistics.json", stats)
            self._write(output, "constraints.json", constraints)
            return "Completed: Job completed successfully with no violations.", []
        constraints = self._read_json(request, env["baseline_constraints"])
        lines = analyzer.capture_lines(
            texts, _time(env.get("start_time")), _time(env.get("end_time"))
        )
        publish = env.get("publish_cloudwatch_metrics") != "Disabled"
        if env.get("analysis_type") == explainability.ANALYSIS_TYPE:
            config = self._read_json(request, env["analysis_config"])
            found, series = self.explainability.analyze(
                env, lines, constraints, config, lambda n, doc: self._write(output, n, doc)
            )
            return _outcome(found, explainability.put_metric_data(env, series) if publish else [])
        if env.get("analysis_type") == "MODEL_QUALITY":
            truth = _resolve(request, env["ground_truth_source"], "ProcessingInputs")
            truth_lines = [
                line
                for url in self.locations.list(truth, "ProcessingInputs")
                for line in self.locations.read(url, "ProcessingInputs").decode().splitlines()
                if line.strip()
            ]
            result = analyzer.analyze_quality(lines, truth_lines, constraints, env)
            named, namespace = analyzer.quality_metrics(result), MODEL_METRICS_NAMESPACE
        else:
            baseline = self._read_json(request, env["baseline_statistics"])
            result = analyzer.analyze(lines, baseline, constraints)
            self._write(output, "drift.json", result.drift)
            named, namespace = analyzer.metrics(result), DATA_METRICS_NAMESPACE
        self._write(output, "statistics.json", result.statistics)
        self._write(output, "constraint_violations.json", {"violations": result.violations})
        return _outcome(result.violations, _metrics(env, named, namespace) if publish else [])

    def _write(self, output: str, name: str, doc: Any) -> None:
        body = json.dumps(doc, indent=4).encode()
        self.locations.write(join(output, name), body, "ProcessingOutputConfig")

    def _read_json(self, request: dict[str, Any], path: str) -> dict[str, Any]:
        url = _resolve(request, path, "ProcessingInputs")
        try:
            doc: dict[str, Any] = json.loads(self.locations.read(url, "ProcessingInputs"))
        except ValueError as exc:
            raise DatasetError(f"{url} is not JSON: {exc}") from exc
        return doc


def _outcome(violations: list[Any], metrics: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    """The job's ExitMessage (the execution's status is read from it) and its metrics."""
    if not violations:
        return "Completed: Job completed successfully with no violations.", metrics
    count = len(violations)
    return f"CompletedWithViolations: Job completed successfully with {count} violations.", metrics


def _metrics(
    env: dict[str, Any], named: list[tuple[str, float]], namespace: str
) -> list[dict[str, Any]]:
    """PutMetricData calls of a monitoring run: SageMaker's namespace, names, dimensions."""
    schedule = env.get("sagemaker_monitoring_schedule_name", "")
    dims = [
        {"Name": "Endpoint", "Value": env.get("sagemaker_endpoint_name", "")},
        {"Name": "MonitoringSchedule", "Value": schedule},
    ]
    data = [
        {"MetricName": name, "Dimensions": dims, "Value": value, "Unit": "None"}
        for name, value in named
    ]
    return [
        {"Namespace": namespace, "MetricData": data[i : i + 500]} for i in range(0, len(data), 500)
    ]


def _mounts(request: dict[str, Any], member: str) -> list[tuple[str, str]]:
    """(LocalPath, S3Uri) of the request's inputs or outputs."""
    if member == "ProcessingInputs":
        items = [i.get("S3Input") or {} for i in request.get("ProcessingInputs") or []]
    else:
        outputs = (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        items = [o.get("S3Output") or {} for o in outputs]
    return [(i["LocalPath"], i["S3Uri"]) for i in items if i.get("LocalPath") and i.get("S3Uri")]


def _resolve(request: dict[str, Any], path: str, member: str) -> str:
    """The URL behind a container path: the S3Uri of the longest LocalPath it lies under."""
    best: tuple[str, str] | None = None
    for local, url in _mounts(request, member):
        base = local.rstrip("/")
        if (path == base or path.startswith(base + "/")) and (
            best is None or len(base) > len(best[0])
        ):
            best = (base, url)
    if best is None:
        raise ValidationException(
            f"{member}: no LocalPath contains {path} (named by the analyzer's environment)."
        )
    return join(best[1], path[len(best[0]) :]) if path != best[0] else best[1]


def _locations(p: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for member in ("ProcessingInputs", "ProcessingOutputConfig"):
        out += [(f"{member}.s3Uri", url) for _, url in _mounts(p, member)]
    return out


def _time(value: Any) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise DatasetError(f"{value} is not an ISO 8601 time") from None
