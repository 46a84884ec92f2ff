"""The dashboard's `Sources` from the gateway's parts (kept out of app.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelhost.control.service import ControlPlane
from modelhost.errors import ModelhostError
from modelhost.gateway.dashboard import monitoring as monitor_summary
from modelhost.gateway.dashboard.data import Sources
from modelhost.jobs.manager import TransformJobs
from modelhost.store.metadata import Kind, MetadataStore
from modelhost.store.outputs import Locations
from modelhost.telemetry import shadow_report
from modelhost.telemetry.alarms import AlarmBook
from modelhost.telemetry.series import SeriesStore

SHADOW_TOLERANCE = 1e-6


def sources(
    home: Path,
    store: MetadataStore,
    control: ControlPlane,
    jobs: TransformJobs,
    series: SeriesStore,
    alarms: AlarmBook,
    locations: Locations,
    instances: Callable[[str], list[dict[str, Any]]] = lambda _name: [],
) -> Sources:
    def endpoints() -> list[dict[str, Any]]:
        return [
            {"Name": r.name, "Status": r.status, "Events": r.spec.get("Events", [])}
            for r in store.list(Kind.ENDPOINT)
        ]

    def describe(name: str) -> dict[str, Any]:
        try:
            return control.operations["DescribeEndpoint"]({"EndpointName": name})
        except ModelhostError:
            return {}  # deleted since it was listed

    def bandit(name: str) -> dict[str, Any] | None:
        try:
            found = control.bandits.describe(name)
        except ModelhostError:
            return None
        if found.get("RoutingConfig") is None:
            return None
        return {k: found.get(k) for k in ("RoutingConfig", "CurrentWeights", "Variants")}

    def transform_jobs(limit: int) -> list[dict[str, Any]]:
        listed = jobs.operations["ListTransformJobs"](
            {"SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": limit}
        )["TransformJobSummaries"]
        out = []
        for job in listed:
            try:
                progress = jobs.extension(job["TransformJobName"])["Progress"]
            except ModelhostError:
                progress = {}
            out.append({**job, "Progress": progress})
        return out

    def shadow(name: str) -> dict[str, Any]:
        return shadow_report.report(home, name, SHADOW_TOLERANCE)

    return Sources(
        series=series,
        endpoints=endpoints,
        describe_endpoint=describe,
        bandit=bandit,
        alarms=alarms.describe,
        transform_jobs=transform_jobs,
        shadow_report=shadow,
        monitoring=monitor_summary.source(control.operations, locations),
        instances=instances,
    )
