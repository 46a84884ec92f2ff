"""Data-quality job definitions (CreateDataQualityJobDefinition and friends), and the
lookups a monitoring schedule needs: its definition, and the endpoint's data capture."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from modelhost.control.listing import list_page
from modelhost.errors import ResourceInUse, ResourceNotFound, ValidationException
from modelhost.jobs import monitoring_request as requests
from modelhost.resources.names import arn
from modelhost.settings import Settings
from modelhost.store.metadata import AlreadyExists, Kind, MetadataStore, Record

Handler = Callable[[dict[str, Any]], dict[str, Any]]
_DQ = Kind.DATA_QUALITY_JOB_DEFINITION
_WHAT = "Data quality job definition"


class JobDefinitions:
    """The job-definition operations and shared record helpers (see the module docstring)."""

    def __init__(
        self, settings: Settings, store: MetadataStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.operations: dict[str, Handler] = {
            "CreateDataQualityJobDefinition": self.create_definition,
            "DescribeDataQualityJobDefinition": self.describe_definition,
            "ListDataQualityJobDefinitions": self.list_definitions,
            "DeleteDataQualityJobDefinition": self.delete_definition,
        }

    def arn(self, kind: str, name: str) -> str:
        return arn(self.settings.region, self.settings.account_id, kind, name)

    def get(self, kind: Kind, name: str, what: str) -> Record:
        rec = self.store.get(kind, name)
        if rec is None:
            raise ResourceNotFound(f"{what} {name} does not exist.")
        return rec

    def create(
        self,
        kind: Kind,
        name: str,
        arn_kind: str,
        spec: dict[str, Any],
        p: dict[str, Any],
        status: str | None,
    ) -> str:
        now = self.clock()
        rec = Record(
            kind,
            name,
            self.arn(arn_kind, name),
            spec,
            list(p.get("Tags") or []),
            status,
            None,
            now,
            now,
        )
        try:
            self.store.create(rec)
        except AlreadyExists:
            raise ResourceInUse(f"{name} already exists ({rec.arn}).") from None
        return rec.arn

    # --- operations -------------------------------------------------------------------

    def create_definition(self, p: dict[str, Any]) -> dict[str, Any]:
        definition = requests.from_data_quality(p)
        self.check_endpoint(definition.endpoint)
        spec = {k: copy.deepcopy(v) for k, v in p.items() if k not in ("JobDefinitionName", "Tags")}
        name = p["JobDefinitionName"]
        return {
            "JobDefinitionArn": self.create(_DQ, name, "data-quality-job-definition", spec, p, None)
        }

    def describe_definition(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.get(_DQ, p["JobDefinitionName"], _WHAT)
        return {
            **rec.spec,
            "JobDefinitionName": rec.name,
            "JobDefinitionArn": rec.arn,
            "CreationTime": rec.created_s,
        }

    def list_definitions(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [
            {
                "MonitoringJobDefinitionName": r.name,
                "MonitoringJobDefinitionArn": r.arn,
                "CreationTime": r.created_s,
                "EndpointName": requests.from_data_quality(r.spec).endpoint,
            }
            for r in self.store.list(_DQ)
        ]
        if p.get("EndpointName"):
            items = [i for i in items if i["EndpointName"] == p["EndpointName"]]
        query = {k: v for k, v in p.items() if k != "EndpointName"}
        page, token = list_page(
            items,
            query,
            name_key="MonitoringJobDefinitionName",
            sort_keys={"Name": "MonitoringJobDefinitionName", "CreationTime": "CreationTime"},
        )
        return {"JobDefinitionSummaries": page, **({"NextToken": token} if token else {})}

    def delete_definition(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.get(_DQ, p["JobDefinitionName"], _WHAT)
        for sched in self.store.list(Kind.MONITORING_SCHEDULE):
            if sched.spec["Config"].get("MonitoringJobDefinitionName") == rec.name:
                raise ResourceInUse(
                    f"Monitoring schedule {sched.name} uses job definition {rec.name}; "
                    "delete it first."
                )
        self.store.delete(_DQ, rec.name)
        return {}

    # --- lookups ----------------------------------------------------------------------

    def definition(self, config: dict[str, Any]) -> requests.Definition:
        """A schedule's MonitoringScheduleConfig as a Definition (inline or by name)."""
        if config.get("MonitoringJobDefinition"):
            return requests.from_inline(config["MonitoringJobDefinition"])
        name = config.get("MonitoringJobDefinitionName")
        if not name:
            raise ValidationException(
                "MonitoringScheduleConfig needs MonitoringJobDefinition or "
                "MonitoringJobDefinitionName."
            )
        if config.get("MonitoringType", "DataQuality") != "DataQuality":
            raise ValidationException(
                f"MonitoringScheduleConfig.MonitoringType {config['MonitoringType']}: only "
                "DataQuality is supported by this modelhost version."
            )
        return requests.from_data_quality(self.get(_DQ, name, _WHAT).spec)

    def check_endpoint(self, endpoint: str) -> dict[str, Any]:
        """The endpoint's DataCaptureConfig; ValidationException when it captures nothing."""
        rec = self.store.get(Kind.ENDPOINT, endpoint)
        if rec is None:
            raise ValidationException(f"Endpoint {endpoint} does not exist.")
        capture = rec.spec["Config"].get("DataCaptureConfig") or {}
        if not capture or not capture.get("EnableCapture", True):
            raise ValidationException(
                f"Endpoint {endpoint} does not capture data: give its endpoint config a "
                "DataCaptureConfig (capturing Input) to monitor it."
            )
        return capture
