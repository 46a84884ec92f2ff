"""Scalable targets, scaling policies, scheduled actions and activities, kept durably.

Each lives in the metadata store as a record of its own Kind whose spec is the API's
shape (what Describe answers, as AWS spells it) plus modelhost's running state (a
target's cooldown clock). Record names are digests of (ResourceId, ScalableDimension[,
name]): ResourceIds are longer than a record name may be. A gateway restart reloads
everything from here, so scaled counts, policies and activities survive it.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelhost.errors import ObjectNotFoundException, ValidationException
from modelhost.store.metadata import Kind, MetadataStore, Record

NAMESPACE = "sagemaker"
ACTIVITIES_KEPT = 100


@dataclass(frozen=True)
class Dimension:
    """One scalable dimension: what its ResourceId looks like, which member of the
    production variant holds its capacity (a dotted path into the variant's spec), and
    the least MinCapacity it takes."""

    name: str
    resource: re.Pattern[str]
    member: str
    noun: str
    min_capacity: int = 1
    # The dimension scales a serverless variant (its ServerlessConfig), not instances.
    serverless: bool = False


_VARIANT = re.compile(r"endpoint/(?P<endpoint>[^/]+)/variant/(?P<variant>[^/]+)")
# Another dimension is one row.
DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in (
        Dimension(
            "sagemaker:variant:DesiredInstanceCount",
            _VARIANT,
            "InitialInstanceCount",
            "desired instance count",
        ),
        # How many instances of a serverless variant are kept warm; requests beyond
        # them still start on-demand instances (scaling/serverless_pool.py).
        Dimension(
            "sagemaker:variant:DesiredProvisionedConcurrency",
            _VARIANT,
            "ServerlessConfig.ProvisionedConcurrency",
            "desired provisioned concurrency",
            serverless=True,
        ),
    )
}


def dimension(name: str) -> Dimension:
    found = DIMENSIONS.get(name)
    if found is None:
        raise ValidationException(
            f"Unsupported scalable dimension {name}; modelhost scales "
            f"{', '.join(sorted(DIMENSIONS))}."
        )
    return found


def parse_resource(resource_id: str, dim: Dimension) -> tuple[str, str]:
    """(endpoint, variant) named by a ResourceId, or ValidationException."""
    m = dim.resource.fullmatch(resource_id)
    if m is None:
        raise ValidationException(
            f"Unsupported resource ID {resource_id} for {dim.name}; it must be "
            "endpoint/<endpoint-name>/variant/<variant-name>."
        )
    return m.group("endpoint"), m.group("variant")


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def not_registered(resource_id: str, dim: str) -> ObjectNotFoundException:
    return ObjectNotFoundException(
        f"No scalable target registered for service namespace: {NAMESPACE}, resource ID: "
        f"{resource_id}, scalable dimension: {dim}"
    )


class ScalingBook:
    """CRUD over the four kinds; `clock` stamps CreationTime and activities."""

    def __init__(
        self,
        store: MetadataStore,
        region: str,
        account_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.region = region
        self.account_id = account_id
        self.clock = clock

    # --- targets ---------------------------------------------------------------------

    def target(self, resource_id: str, dim: str) -> Record | None:
        return self.store.get(Kind.SCALABLE_TARGET, digest(resource_id, dim))

    def require_target(self, resource_id: str, dim: str) -> Record:
        rec = self.target(resource_id, dim)
        if rec is None:
            raise not_registered(resource_id, dim)
        return rec

    def targets(self) -> list[Record]:
        return sorted(self.store.list(Kind.SCALABLE_TARGET), key=lambda r: r.created_s)

    def new_target(self, spec: dict[str, Any], tags: list[dict[str, str]]) -> Record:
        now = self.clock()
        name = digest(spec["ResourceId"], spec["ScalableDimension"])
        arn = (
            f"arn:aws:application-autoscaling:{self.region}:{self.account_id}:"
            f"scalable-target/{NAMESPACE[:4]}{name[:28]}"
        )
        spec["ScalableTargetARN"] = arn
        rec = Record(Kind.SCALABLE_TARGET, name, arn, spec, tags, None, None, now, now)
        self.store.create(rec)
        return rec

    def save(self, rec: Record) -> None:
        rec.modified_s = self.clock()
        self.store.save(rec)

    def delete_target(self, rec: Record) -> None:
        """The target and what hangs on it: policies and scheduled actions (as AWS)."""
        rid, dim = rec.spec["ResourceId"], rec.spec["ScalableDimension"]
        for kind in (Kind.SCALING_POLICY, Kind.SCHEDULED_ACTION):
            for child in self.children(kind, rid, dim):
                self.store.delete(kind, child.name)
        self.store.delete(Kind.SCALABLE_TARGET, rec.name)

    # --- policies and scheduled actions ----------------------------------------------

    def children(self, kind: Kind, resource_id: str | None, dim: str | None) -> list[Record]:
        out = [
            r
            for r in self.store.list(kind)
            if (resource_id is None or r.spec["ResourceId"] == resource_id)
            and (dim is None or r.spec["ScalableDimension"] == dim)
        ]
        return sorted(out, key=lambda r: r.created_s)

    def child(self, kind: Kind, resource_id: str, dim: str, name: str) -> Record | None:
        return self.store.get(kind, digest(resource_id, dim, name))

    def put_child(self, kind: Kind, spec: dict[str, Any], name: str, arn_kind: str) -> Record:
        """Create or replace a policy or scheduled action; an update keeps ARN and time."""
        rid, dim = spec["ResourceId"], spec["ScalableDimension"]
        rec = self.child(kind, rid, dim, name)
        now = self.clock()
        if rec is not None:
            rec.spec = {**spec, _ARN_MEMBER[kind]: rec.arn}
            self.save(rec)
            return rec
        label = "policyName" if kind == Kind.SCALING_POLICY else "scheduledActionName"
        arn = (
            f"arn:aws:autoscaling:{self.region}:{self.account_id}:{arn_kind}:{uuid.uuid4()}:"
            f"resource/{NAMESPACE}/{rid}:{label}/{name}"
        )
        spec = {**spec, _ARN_MEMBER[kind]: arn}
        rec = Record(kind, digest(rid, dim, name), arn, spec, [], None, None, now, now)
        self.store.create(rec)
        return rec

    def delete_child(self, kind: Kind, resource_id: str, dim: str, name: str) -> None:
        rec = self.child(kind, resource_id, dim, name)
        if rec is None:
            noun = "scaling policy" if kind == Kind.SCALING_POLICY else "scheduled action"
            raise ObjectNotFoundException(
                f"No {noun} found for service namespace: {NAMESPACE}, resource ID: "
                f"{resource_id}, scalable dimension: {dim}, name: {name}"
            )
        self.store.delete(kind, rec.name)

    # --- activities ------------------------------------------------------------------

    def add_activity(self, activity: dict[str, Any]) -> dict[str, Any]:
        """Store a new activity (ActivityId, StartTime filled in); keeps the newest
        ACTIVITIES_KEPT per target. StartTimes of one target strictly increase, so the
        newest-first order holds even when the clock has not moved."""
        same = self.activities(activity["ResourceId"], activity["ScalableDimension"])
        now = self.clock()
        if same and now <= same[0]["StartTime"]:
            now = same[0]["StartTime"] + 1e-6
        activity = {
            "ActivityId": str(uuid.uuid4()),
            "ServiceNamespace": NAMESPACE,
            "StartTime": now,
            **activity,
        }
        rec = Record(
            Kind.SCALING_ACTIVITY, activity["ActivityId"], "", activity, [], None, None, now, now
        )
        self.store.create(rec)
        for old in same[ACTIVITIES_KEPT - 1 :]:
            self.store.delete(Kind.SCALING_ACTIVITY, old["ActivityId"])
        return activity

    def update_activity(self, activity: dict[str, Any]) -> None:
        rec = self.store.get(Kind.SCALING_ACTIVITY, activity["ActivityId"])
        if rec is not None:
            rec.spec = activity
            self.save(rec)

    def activities(self, resource_id: str | None, dim: str | None) -> list[dict[str, Any]]:
        """Newest first, as DescribeScalingActivities lists them."""
        recs = self.children(Kind.SCALING_ACTIVITY, resource_id, dim)
        return [r.spec for r in sorted(recs, key=lambda r: -float(r.spec["StartTime"]))]


_ARN_MEMBER = {Kind.SCALING_POLICY: "PolicyARN", Kind.SCHEDULED_ACTION: "ScheduledActionARN"}
