"""The Application Auto Scaling operations for namespace `sagemaker`.

Input is first checked against botocore's `application-autoscaling` model (shapes,
lengths, enums), then against the rules the model does not carry, with the service's
error codes: ValidationException, ObjectNotFoundException (no such target, policy or
action), ConcurrentUpdateException (another change to the target is running),
FailedResourceAccessException (the variant a target names is gone). Policies and
scheduled actions are in `scaling/policy_rules.py`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from modelhost.control.validation import validate_input
from modelhost.errors import (
    ConcurrentUpdateException,
    FailedResourceAccessException,
    InvalidNextTokenException,
    ScalingResourceNotFound,
    ValidationException,
)
from modelhost.scaling import policy_rules
from modelhost.scaling.book import NAMESPACE, ScalingBook, dimension, parse_resource
from modelhost.scaling.capacity import Capacity
from modelhost.store.metadata import Kind, Record

SERVICE = "application-autoscaling"
MAX_RESULTS = 50
Handler = Callable[[dict[str, Any]], dict[str, Any]]


@functools.cache
def service_model() -> dict[str, Any]:
    """botocore's `application-autoscaling` model, loaded on first use."""
    from botocore.loaders import Loader

    model: dict[str, Any] = Loader().load_service_model(SERVICE, "service-2")
    return model


def page(items: list[dict[str, Any]], p: dict[str, Any], member: str) -> dict[str, Any]:
    """MaxResults (1-50, default 50) and NextToken (an offset this API handed out)."""
    size = int(p.get("MaxResults") or MAX_RESULTS)
    if not 1 <= size <= MAX_RESULTS:
        raise ValidationException(f"MaxResults must be between 1 and {MAX_RESULTS}.")
    token = p.get("NextToken")
    start = 0
    if token:
        if not str(token).isdigit() or int(token) > len(items):
            raise InvalidNextTokenException(f"Invalid NextToken: {token}")
        start = int(token)
    out: dict[str, Any] = {member: items[start : start + size]}
    if start + size < len(items):
        out["NextToken"] = str(start + size)
    return out


class ScalingService:
    """The operations; `alarms_for(policy_arn)` lists the CloudWatch alarms whose
    AlarmActions name a step policy, as [(name, arn)]."""

    def __init__(
        self,
        book: ScalingBook,
        capacity: Capacity,
        alarms_for: Callable[[str], list[tuple[str, str]]] = lambda _arn: [],
    ) -> None:
        self.book = book
        self.capacity = capacity
        self.alarms_for = alarms_for
        self._lock = threading.Lock()
        self.operations: dict[str, Handler] = {
            "RegisterScalableTarget": self.register_scalable_target,
            "DeregisterScalableTarget": self.deregister_scalable_target,
            "DescribeScalableTargets": self.describe_scalable_targets,
            "PutScalingPolicy": self.put_scaling_policy,
            "DescribeScalingPolicies": self.describe_scaling_policies,
            "DeleteScalingPolicy": self.delete_scaling_policy,
            "DescribeScalingActivities": self.describe_scaling_activities,
            "PutScheduledAction": self.put_scheduled_action,
            "DescribeScheduledActions": self.describe_scheduled_actions,
            "DeleteScheduledAction": self.delete_scheduled_action,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        validate_input(operation, params, service_model())
        if "ServiceNamespace" in params and params["ServiceNamespace"] != NAMESPACE:
            raise ValidationException(
                f"Unsupported service namespace {params['ServiceNamespace']}; modelhost "
                f"scales {NAMESPACE} resources."
            )
        return self.operations[operation](params)

    @contextmanager
    def changing(self) -> Iterator[None]:
        """One change at a time; a second one meanwhile is refused, as AWS does."""
        if not self._lock.acquire(timeout=5.0):
            raise ConcurrentUpdateException(
                "A change to this scalable target is in progress; try again."
            )
        try:
            yield
        finally:
            self._lock.release()

    # --- scalable targets ------------------------------------------------------------

    def register_scalable_target(self, p: dict[str, Any]) -> dict[str, Any]:
        dim = dimension(p["ScalableDimension"])
        endpoint, variant = parse_resource(p["ResourceId"], dim)
        low, high = p.get("MinCapacity"), p.get("MaxCapacity")
        with self.changing():
            rec = self.book.target(p["ResourceId"], dim.name)
            if rec is None:
                if low is None or high is None:
                    raise ValidationException(
                        "MinCapacity and MaxCapacity are required to register a new "
                        "scalable target."
                    )
                if self.capacity.current(endpoint, variant, dim) is None:
                    raise ValidationException(
                        f"The endpoint variant {p['ResourceId']} does not exist; create the "
                        "endpoint first."
                    )
            why = self.capacity.unscalable(endpoint, variant, dim)
            if why is not None:
                raise ValidationException(why)
            spec = dict(rec.spec) if rec is not None else {}
            low = int(spec["MinCapacity"] if low is None else low)
            high = int(spec["MaxCapacity"] if high is None else high)
            most = self.capacity.most(endpoint, variant, dim)
            if most is not None and high > most:
                raise ValidationException(
                    f"MaxCapacity ({high}) of {dim.name} cannot exceed the variant's "
                    f"MaxConcurrency ({most})."
                )
            least = self.capacity.least(endpoint, dim)
            if low < least:
                raise ValidationException(
                    f"MinCapacity of {dim.name} must be at least {least} for "
                    f"{p['ResourceId']}; only an asynchronous endpoint (AsyncInferenceConfig) "
                    "scales to 0 instances."
                )
            if low > high:
                raise ValidationException(
                    f"MinCapacity ({low}) cannot be greater than MaxCapacity ({high})."
                )
            suspended = {**_SUSPENDED, **spec.get("SuspendedState", {})}
            suspended.update(p.get("SuspendedState") or {})
            spec.update(
                ServiceNamespace=NAMESPACE,
                ResourceId=p["ResourceId"],
                ScalableDimension=dim.name,
                MinCapacity=low,
                MaxCapacity=high,
                RoleARN=p.get("RoleARN") or spec.get("RoleARN") or self._role(),
                SuspendedState=suspended,
                # The autoscaler moves a capacity outside the new range into it.
                BoundsChanged=True,
            )
            if rec is None:
                tags = [{"Key": k, "Value": v} for k, v in (p.get("Tags") or {}).items()]
                rec = self.book.new_target(spec, tags)
            else:
                rec.spec = spec
                self.book.save(rec)
        return {"ScalableTargetARN": rec.arn}

    def _role(self) -> str:
        return (
            f"arn:aws:iam::{self.book.account_id}:role/aws-service-role/"
            "sagemaker.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
        )

    def deregister_scalable_target(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.changing():
            rec = self.book.require_target(p["ResourceId"], p["ScalableDimension"])
            self.book.delete_target(rec)
        return {}

    def describe_scalable_targets(self, p: dict[str, Any]) -> dict[str, Any]:
        wanted = set(p.get("ResourceIds") or [])
        dim = p.get("ScalableDimension")
        items = [
            _target_view(r)
            for r in self.book.targets()
            if (not wanted or r.spec["ResourceId"] in wanted)
            and (dim is None or r.spec["ScalableDimension"] == dim)
        ]
        return page(items, p, "ScalableTargets")

    # --- policies, scheduled actions and activities ----------------------------------

    def put_scaling_policy(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.changing():
            target = self.book.require_target(p["ResourceId"], p["ScalableDimension"])
            self._reachable(target)
            spec = policy_rules.policy_spec(p)
            dim = spec["ScalableDimension"]
            if self.book.child(Kind.SCALING_POLICY, p["ResourceId"], dim, p["PolicyName"]) is None:
                policy_rules.check_count(
                    len(self.book.children(Kind.SCALING_POLICY, p["ResourceId"], None))
                )
            if spec["PolicyType"] == "TargetTrackingScaling":
                spec["Alarms"] = policy_rules.tracking_alarms(
                    p["ResourceId"], self.book.region, self.book.account_id
                )
            rec = self.book.put_child(Kind.SCALING_POLICY, spec, p["PolicyName"], "scalingPolicy")
        out: dict[str, Any] = {"PolicyARN": rec.arn}
        if "Alarms" in spec:
            out["Alarms"] = spec["Alarms"]
        return out

    def _reachable(self, target: Record) -> None:
        dim = dimension(target.spec["ScalableDimension"])
        endpoint, variant = parse_resource(target.spec["ResourceId"], dim)
        if self.capacity.current(endpoint, variant, dim) is None:
            raise FailedResourceAccessException(
                f"Failed to access the resource {target.spec['ResourceId']}: the endpoint or "
                "its variant no longer exists."
            )

    def describe_scaling_policies(self, p: dict[str, Any]) -> dict[str, Any]:
        names = set(p.get("PolicyNames") or [])
        items = []
        for r in self.book.children(
            Kind.SCALING_POLICY, p.get("ResourceId"), p.get("ScalableDimension")
        ):
            if names and r.spec["PolicyName"] not in names:
                continue
            view = {**r.spec, "CreationTime": r.created_s}
            if view["PolicyType"] == "StepScaling":
                view["Alarms"] = [
                    {"AlarmName": n, "AlarmARN": a} for n, a in self.alarms_for(r.arn)
                ]
            items.append(view)
        return page(items, p, "ScalingPolicies")

    def delete_scaling_policy(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.changing():
            self.book.delete_child(
                Kind.SCALING_POLICY, p["ResourceId"], p["ScalableDimension"], p["PolicyName"]
            )
        return {}

    def put_scheduled_action(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.changing():
            self.book.require_target(p["ResourceId"], p["ScalableDimension"])
            name = p["ScheduledActionName"]
            old = self.book.child(
                Kind.SCHEDULED_ACTION, p["ResourceId"], p["ScalableDimension"], name
            )
            dim = dimension(p["ScalableDimension"])
            endpoint, _ = parse_resource(p["ResourceId"], dim)
            least = self.capacity.least(endpoint, dim)
            spec = policy_rules.scheduled_spec(p, None if old is None else old.spec, least)
            if old is None:
                policy_rules.check_count(
                    len(self.book.children(Kind.SCHEDULED_ACTION, p["ResourceId"], None))
                )
            self.book.put_child(Kind.SCHEDULED_ACTION, spec, name, "scheduledAction")
        return {}

    def describe_scheduled_actions(self, p: dict[str, Any]) -> dict[str, Any]:
        names = set(p.get("ScheduledActionNames") or [])
        items = [
            {**r.spec, "CreationTime": r.created_s}
            for r in self.book.children(
                Kind.SCHEDULED_ACTION, p.get("ResourceId"), p.get("ScalableDimension")
            )
            if not names or r.spec["ScheduledActionName"] in names
        ]
        return page(items, p, "ScheduledActions")

    def delete_scheduled_action(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.changing():
            self.book.delete_child(
                Kind.SCHEDULED_ACTION,
                p["ResourceId"],
                p["ScalableDimension"],
                p["ScheduledActionName"],
            )
        return {}

    def describe_scaling_activities(self, p: dict[str, Any]) -> dict[str, Any]:
        items = self.book.activities(p.get("ResourceId"), p.get("ScalableDimension"))
        if not p.get("IncludeNotScaledActivities"):
            items = [a for a in items if "NotScaledReasons" not in a]
        return page(items, p, "ScalingActivities")

    # --- tags ------------------------------------------------------------------------

    def _tagged(self, arn: str) -> Record:
        for rec in self.book.targets():
            if rec.arn == arn:
                return rec
        raise ScalingResourceNotFound(f"No scalable target with ARN {arn}.")

    def tag_resource(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.changing():
            rec = self._tagged(p["ResourceARN"])
            tags = {t["Key"]: t["Value"] for t in rec.tags}
            tags.update(p["Tags"])
            if len(tags) > 50:
                raise ValidationException("A scalable target can have at most 50 tags.")
            rec.tags = [{"Key": k, "Value": v} for k, v in tags.items()]
            self.book.save(rec)
        return {}

    def untag_resource(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.changing():
            rec = self._tagged(p["ResourceARN"])
            drop = set(p["TagKeys"])
            rec.tags = [t for t in rec.tags if t["Key"] not in drop]
            self.book.save(rec)
        return {}

    def list_tags_for_resource(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._tagged(p["ResourceARN"])
        return {"Tags": {t["Key"]: t["Value"] for t in rec.tags}}


_SUSPENDED = {
    "DynamicScalingInSuspended": False,
    "DynamicScalingOutSuspended": False,
    "ScheduledScalingSuspended": False,
}


def _target_view(rec: Record) -> dict[str, Any]:
    keep = (
        "ServiceNamespace",
        "ResourceId",
        "ScalableDimension",
        "MinCapacity",
        "MaxCapacity",
        "RoleARN",
        "SuspendedState",
        "ScalableTargetARN",
    )
    return {**{k: rec.spec[k] for k in keep if k in rec.spec}, "CreationTime": rec.created_s}
