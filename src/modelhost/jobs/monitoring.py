"""Monitoring schedules and their executions; data-quality job definitions.

A schedule is a MONITORING_SCHEDULE record: the accepted MonitoringScheduleConfig, the
slot of its last run, and its executions (scheduled time and processing job). The loop
(`run`, every `tick_s`) starts each due run as a processing job of the analyzer
(jobs/processing.py); an execution's status is its processing job's, Completed becoming
CompletedWithViolations when the analyzer reported violations. The store holds all of
it, so a restarted server keeps its schedules, and a run missed while it was down is not
replayed (the next one covers the time since, as monitor/schedule.py says).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from typing import Any

from modelhost.control.listing import list_page
from modelhost.errors import ModelhostError
from modelhost.jobs import monitoring_request as requests
from modelhost.jobs.monitoring_definitions import JobDefinitions
from modelhost.jobs.processing import ProcessingJobs
from modelhost.monitor import schedule as cadence
from modelhost.resources.status import MonitoringExecutionStatus as Exec
from modelhost.resources.status import MonitoringScheduleStatus as Status
from modelhost.resources.status import ProcessingJobStatus
from modelhost.settings import Settings
from modelhost.store.metadata import Kind, MetadataStore, Record
from modelhost.store.outputs import join

log = logging.getLogger("modelhost.jobs")

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_EXECUTIONS = 500  # kept per schedule, newest last


class MonitoringSchedules:
    """The schedule operations, ListMonitoringExecutions, the data-quality job
    definitions, and the loop that starts due runs."""

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        processing: ProcessingJobs,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.processing = processing
        self.clock = clock
        self.hour_s = settings.monitoring_hour_s
        self.tick_s = min(1.0, self.hour_s / 10)
        self.defs = JobDefinitions(settings, store, clock)
        self.operations: dict[str, Handler] = {
            "CreateMonitoringSchedule": self.create_schedule,
            "DescribeMonitoringSchedule": self.describe_schedule,
            "ListMonitoringSchedules": self.list_schedules,
            "UpdateMonitoringSchedule": self.update_schedule,
            "DeleteMonitoringSchedule": self.delete_schedule,
            "StartMonitoringSchedule": lambda p: self._set_status(p, Status.SCHEDULED),
            "StopMonitoringSchedule": lambda p: self._set_status(p, Status.STOPPED),
            "ListMonitoringExecutions": self.list_executions,
            **self.defs.operations,
        }

    # --- schedules --------------------------------------------------------------------

    def _check_config(self, config: dict[str, Any]) -> requests.Definition:
        definition = self.defs.definition(config)
        self.defs.check_locations(definition)
        if definition.endpoint:
            self.defs.check_endpoint(definition.endpoint)
        sched = config.get("ScheduleConfig") or {}
        parsed = cadence.parse_expression(sched.get("ScheduleExpression", "cron(0 * ? * * *)"))
        if parsed.now:
            cadence.now_window(
                0.0, sched.get("DataAnalysisStartTime"), sched.get("DataAnalysisEndTime")
            )
        return definition

    def create_schedule(self, p: dict[str, Any]) -> dict[str, Any]:
        config = p["MonitoringScheduleConfig"]
        self._check_config(config)
        last = cadence.slot_of(self.clock(), self.hour_s)  # the first run is in the next slot
        spec = {"Config": copy.deepcopy(config), "LastSlot": last, "Fired": False, "Executions": []}
        name = p["MonitoringScheduleName"]
        created = self.defs.create(
            Kind.MONITORING_SCHEDULE, name, "monitoring-schedule", spec, p, Status.SCHEDULED
        )
        return {"MonitoringScheduleArn": created}

    def update_schedule(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.defs.get(
            Kind.MONITORING_SCHEDULE, p["MonitoringScheduleName"], "Monitoring schedule"
        )
        self._check_config(p["MonitoringScheduleConfig"])
        rec.spec["Config"] = copy.deepcopy(p["MonitoringScheduleConfig"])
        rec.spec["Fired"] = False
        rec.modified_s = self.clock()
        self.store.save(rec)
        return {"MonitoringScheduleArn": rec.arn}

    def delete_schedule(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.defs.get(
            Kind.MONITORING_SCHEDULE, p["MonitoringScheduleName"], "Monitoring schedule"
        )
        self.store.delete(Kind.MONITORING_SCHEDULE, rec.name)
        return {}

    def _set_status(self, p: dict[str, Any], status: Status) -> dict[str, Any]:
        rec = self.defs.get(
            Kind.MONITORING_SCHEDULE, p["MonitoringScheduleName"], "Monitoring schedule"
        )
        rec.status = status
        rec.modified_s = self.clock()
        self.store.save(rec)
        return {}

    def _schedule_summary(self, rec: Record) -> dict[str, Any]:
        config = rec.spec["Config"]
        out: dict[str, Any] = {
            "MonitoringScheduleName": rec.name,
            "MonitoringScheduleArn": rec.arn,
            "CreationTime": rec.created_s,
            "LastModifiedTime": rec.modified_s,
            "MonitoringScheduleStatus": rec.status,
            "MonitoringType": config.get("MonitoringType", "DataQuality"),
        }
        endpoint = self.defs.definition(config).endpoint
        if endpoint:  # none for a batch transform job's capture
            out["EndpointName"] = endpoint
        if config.get("MonitoringJobDefinitionName"):
            out["MonitoringJobDefinitionName"] = config["MonitoringJobDefinitionName"]
        return out

    def describe_schedule(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.defs.get(
            Kind.MONITORING_SCHEDULE, p["MonitoringScheduleName"], "Monitoring schedule"
        )
        out = {**self._schedule_summary(rec), "MonitoringScheduleConfig": rec.spec["Config"]}
        if rec.failure_reason:
            out["FailureReason"] = rec.failure_reason
        executions = self._executions(rec)
        if executions:
            out["LastMonitoringExecutionSummary"] = executions[-1]
        return out

    def list_schedules(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [self._schedule_summary(r) for r in self.store.list(Kind.MONITORING_SCHEDULE)]
        items = _filter(
            items,
            p,
            ("EndpointName", "MonitoringJobDefinitionName"),
            ("MonitoringTypeEquals", "MonitoringType"),
        )
        query = {
            k: v
            for k, v in p.items()
            if k not in ("EndpointName", "MonitoringJobDefinitionName", "MonitoringTypeEquals")
        }
        page, token = list_page(
            items,
            query,
            name_key="MonitoringScheduleName",
            sort_keys={
                "Name": "MonitoringScheduleName",
                "CreationTime": "CreationTime",
                "Status": "MonitoringScheduleStatus",
            },
            status_key="MonitoringScheduleStatus",
        )
        return {"MonitoringScheduleSummaries": page, **({"NextToken": token} if token else {})}

    # --- executions -------------------------------------------------------------------

    def _executions(self, rec: Record) -> list[dict[str, Any]]:
        out = []
        for e in rec.spec.get("Executions") or []:
            item = {
                "MonitoringScheduleName": rec.name,
                **{k: v for k, v in e.items() if k != "ProcessingJobName"},
            }
            job = (
                self.store.get(Kind.PROCESSING_JOB, e["ProcessingJobName"])
                if e.get("ProcessingJobName")
                else None
            )
            if job is not None:
                item["ProcessingJobArn"] = job.arn
                item["LastModifiedTime"] = job.modified_s
                item["MonitoringExecutionStatus"] = _status(job)
                if job.failure_reason:
                    item["FailureReason"] = job.failure_reason
            out.append(item)
        return out

    def list_executions(self, p: dict[str, Any]) -> dict[str, Any]:
        schedules = self.store.list(Kind.MONITORING_SCHEDULE)
        if p.get("MonitoringScheduleName"):
            schedules = [s for s in schedules if s.name == p["MonitoringScheduleName"]]
        items = [e for s in schedules for e in self._executions(s)]
        items = _filter(
            items,
            p,
            ("EndpointName", "MonitoringJobDefinitionName"),
            ("MonitoringTypeEquals", "MonitoringType"),
        )
        for bound, sign in (("ScheduledTimeBefore", -1), ("ScheduledTimeAfter", 1)):
            if p.get(bound) is not None:
                limit = (
                    float(p[bound]) if not hasattr(p[bound], "timestamp") else p[bound].timestamp()
                )
                items = [i for i in items if (i["ScheduledTime"] - limit) * sign > 0]
        for i in items:
            i["ExecutionKey"] = (
                f"{i['MonitoringScheduleName']}/{i['ScheduledTime']}/{i['CreationTime']}"
            )
        query = {
            k: v
            for k, v in p.items()
            if k
            in (
                "SortBy",
                "SortOrder",
                "MaxResults",
                "NextToken",
                "StatusEquals",
                "CreationTimeBefore",
                "CreationTimeAfter",
                "LastModifiedTimeBefore",
                "LastModifiedTimeAfter",
            )
        }
        query.setdefault("SortBy", "ScheduledTime")
        page, token = list_page(
            items,
            query,
            name_key="ExecutionKey",
            sort_keys={
                "CreationTime": "CreationTime",
                "ScheduledTime": "ScheduledTime",
                "Status": "MonitoringExecutionStatus",
            },
            status_key="MonitoringExecutionStatus",
            default_sort="ScheduledTime",
        )
        for i in page:
            i.pop("ExecutionKey", None)
        return {"MonitoringExecutionSummaries": page, **({"NextToken": token} if token else {})}

    # --- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                self.tick()
            except Exception:
                log.exception("monitoring schedule tick failed")

    def tick(self) -> None:
        """Start every run that is due now (idempotent within a slot)."""
        now = self.clock()
        for rec in self.store.list(Kind.MONITORING_SCHEDULE):
            if rec.status != Status.SCHEDULED:
                continue
            sched = rec.spec["Config"].get("ScheduleConfig") or {}
            parsed = cadence.parse_expression(sched.get("ScheduleExpression", "cron(0 * ? * * *)"))
            if parsed.now:
                if rec.spec.get("Fired"):
                    continue
                rec.spec["Fired"] = True
                window = cadence.now_window(
                    now, sched.get("DataAnalysisStartTime"), sched.get("DataAnalysisEndTime")
                )
                self.fire(rec, now, window)
                continue
            slot = cadence.due_slot(parsed, now, self.hour_s, int(rec.spec.get("LastSlot", -1)))
            if slot is not None:
                rec.spec["LastSlot"] = slot
                self.fire(rec, slot * self.hour_s, cadence.cron_window(parsed, slot, self.hour_s))

    def fire(self, rec: Record, scheduled_s: float, window: tuple[float, float]) -> None:
        """Start one run as a processing job and record the execution."""
        now = self.clock()
        config = rec.spec["Config"]
        execution: dict[str, Any] = {
            "ScheduledTime": scheduled_s,
            "CreationTime": now,
            "LastModifiedTime": now,
            "MonitoringExecutionStatus": Exec.PENDING,
            "MonitoringType": config.get("MonitoringType", "DataQuality"),
        }
        if config.get("MonitoringJobDefinitionName"):
            execution["MonitoringJobDefinitionName"] = config["MonitoringJobDefinitionName"]
        try:
            definition = self.defs.definition(config)
            if definition.endpoint:
                execution["EndpointName"] = definition.endpoint
                capture = self.defs.check_endpoint(definition.endpoint)
                capture_uri = join(capture["DestinationS3Uri"], definition.endpoint) + "/"
            else:  # a transform job's capture: its input manifests
                capture_uri = join(definition.batch_capture_uri, "input") + "/"
            request = requests.processing_request(
                definition, rec.name, capture_uri, scheduled_s, window
            )
            self.processing.submit(request["ProcessingJobName"], request, schedule_arn=rec.arn)
            execution["ProcessingJobName"] = request["ProcessingJobName"]
        except ModelhostError as exc:
            execution["MonitoringExecutionStatus"] = Exec.FAILED
            execution["FailureReason"] = str(exc)[:1024]
        executions = [*(rec.spec.get("Executions") or []), execution]
        rec.spec["Executions"] = executions[-MAX_EXECUTIONS:]
        self.store.save(rec)


def _status(job: Record) -> str:
    if job.status == ProcessingJobStatus.COMPLETED:
        message = str(job.spec.get("ExitMessage") or "")
        return (
            Exec.COMPLETED_WITH_VIOLATIONS
            if message.startswith("CompletedWithViolations")
            else Exec.COMPLETED
        )
    return str(job.status)


def _filter(
    items: list[dict[str, Any]], p: dict[str, Any], exact: tuple[str, ...], renamed: tuple[str, str]
) -> list[dict[str, Any]]:
    for key in exact:
        if p.get(key):
            items = [i for i in items if i.get(key) == p[key]]
    param, field = renamed
    if p.get(param):
        items = [i for i in items if i.get(field) == p[param]]
    return items
