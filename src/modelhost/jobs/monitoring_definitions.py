"""Job definitions (CreateDataQualityJobDefinition, ModelQuality and ModelExplainability,
and friends), and the lookups a monitoring schedule needs: its definition, and the
endpoint's data capture."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from modelhost.control.listing import list_page
from modelhost.errors import ResourceInUse, ResourceNotFound, ValidationException
from modelhost.jobs import monitoring_request as requests
from modelhost.resources.names import arn
from modelhost.settings import Settings
from modelhost.store.locations import confine
from modelhost.store.metadata import AlreadyExists, Kind, MetadataStore, Record

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class _Type:
    """One kind of job definition: its record kind, parser, ARN kind and name."""

    kind: Kind
    parse: Callable[[dict[str, Any]], requests.Definition]
    arn_kind: str
    what: str


TYPES = {
    "DataQuality": _Type(
        Kind.DATA_QUALITY_JOB_DEFINITION,
        requests.from_data_quality,
        "data-quality-job-definition",
        "Data quality job definition",
    ),
    "ModelQuality": _Type(
        Kind.MODEL_QUALITY_JOB_DEFINITION,
        requests.from_model_quality,
        "model-quality-job-definition",
        "Model quality job definition",
    ),
    "ModelExplainability": _Type(
        Kind.EXPLAINABILITY_JOB_DEFINITION,
        requests.from_model_explainability,
        "model-explainability-job-definition",
        "Model explainability job definition",
    ),
}


class JobDefinitions:
    """The job-definition operations and shared record helpers (see the module docstring)."""

    def __init__(
        self, settings: Settings, store: MetadataStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.operations: dict[str, Handler] = {}
        for name, t in TYPES.items():
            self.operations.update(
                {
                    f"Create{name}JobDefinition": partial(self.create_definition, t),
                    f"Describe{name}JobDefinition": partial(self.describe_definition, t),
                    f"List{name}JobDefinitions": partial(self.list_definitions, t),
                    f"Delete{name}JobDefinition": partial(self.delete_definition, t),
                }
            )

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

    def create_definition(self, t: _Type, p: dict[str, Any]) -> dict[str, Any]:
        definition = t.parse(p)
        self.check_locations(definition)
        if definition.endpoint:
            self.check_endpoint(definition.endpoint)
        spec = {k: copy.deepcopy(v) for k, v in p.items() if k not in ("JobDefinitionName", "Tags")}
        name = p["JobDefinitionName"]
        return {"JobDefinitionArn": self.create(t.kind, name, t.arn_kind, spec, p, None)}

    def describe_definition(self, t: _Type, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.get(t.kind, p["JobDefinitionName"], t.what)
        return {
            **rec.spec,
            "JobDefinitionName": rec.name,
            "JobDefinitionArn": rec.arn,
            "CreationTime": rec.created_s,
        }

    def list_definitions(self, t: _Type, p: dict[str, Any]) -> dict[str, Any]:
        items = [
            {
                "MonitoringJobDefinitionName": r.name,
                "MonitoringJobDefinitionArn": r.arn,
                "CreationTime": r.created_s,
                "EndpointName": t.parse(r.spec).endpoint,
            }
            for r in self.store.list(t.kind)
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

    def delete_definition(self, t: _Type, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.get(t.kind, p["JobDefinitionName"], t.what)
        for sched in self.store.list(Kind.MONITORING_SCHEDULE):
            if sched.spec["Config"].get("MonitoringJobDefinitionName") == rec.name:
                raise ResourceInUse(
                    f"Monitoring schedule {sched.name} uses job definition {rec.name}; "
                    "delete it first."
                )
        self.store.delete(t.kind, rec.name)
        return {}

    # --- lookups ----------------------------------------------------------------------

    def definition(self, config: dict[str, Any]) -> requests.Definition:
        """A schedule's MonitoringScheduleConfig as a Definition (inline or by name)."""
        if config.get("MonitoringJobDefinition"):
            if config.get("MonitoringType", "DataQuality") != "DataQuality":
                # An inline definition is a data-quality one: running it as another type
                # would silently monitor something else.
                raise ValidationException(
                    f"MonitoringScheduleConfig.MonitoringType {config['MonitoringType']}: "
                    "give MonitoringJobDefinitionName (an inline MonitoringJobDefinition "
                    "is for DataQuality)."
                )
            return requests.from_inline(config["MonitoringJobDefinition"])
        name = config.get("MonitoringJobDefinitionName")
        if not name:
            raise ValidationException(
                "MonitoringScheduleConfig needs MonitoringJobDefinition or "
                "MonitoringJobDefinitionName."
            )
        t = TYPES.get(config.get("MonitoringType", "DataQuality"))
        if t is None:
            raise ValidationException(
                f"MonitoringScheduleConfig.MonitoringType {config['MonitoringType']}: "
                "DataQuality, ModelQuality and ModelExplainability are supported by this "
                "modelhost version."
            )
        return t.parse(self.get(t.kind, name, t.what).spec)

    def check_locations(self, d: requests.Definition) -> None:
        """Baselines, ground truth and outputs under the allowed prefixes, never in home."""
        settings = self.settings
        for member, uri in (
            ("baselineConfig.constraintsResource.s3Uri", d.constraints_uri),
            ("baselineConfig.statisticsResource.s3Uri", d.statistics_uri),
            ("groundTruthS3Input.s3Uri", d.ground_truth_uri),
            ("modelExplainabilityAppSpecification.configUri", d.config_uri),
            ("monitoringOutputs.s3Output.s3Uri", d.output_uri),
            ("batchTransformInput.dataCapturedDestinationS3Uri", d.batch_capture_uri),
        ):
            if uri:
                confine(uri, settings.allowed_data_prefixes, member, [settings.home])

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
