"""Who may do what: roles, the table of every action the gateway can dispatch, and the one
policy function `authorize`.

Actions are named like IAM actions: `sagemaker:<Operation>` for the control plane and the
runtime, `application-autoscaling:<Operation>`, `cloudwatch:<Operation>`, and
`modelhost:<Name>` for the native `/api/...` routes and prediction lookups. Anything not in
`ACTIONS` is denied to every role.

Roles nest: an invoker may only invoke (and read predictions of) the endpoints its
pattern allows, read CloudWatch metrics and alarms and publish its own metrics; a deployer
also manages models, endpoint configs, endpoints, jobs, scaling and alarms; an admin also
manages access keys. A key's `--endpoints` pattern limits every endpoint-scoped action
(resources `endpoint/<name>`) and prediction-set reads (`predictions/<name>`), for every
role; CloudWatch calls are not endpoint-scoped (as in IAM, metrics have no resource ARN).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fnmatch import fnmatchcase


class Role(enum.StrEnum):
    """What a key may do; each role includes the ones below it."""

    INVOKER = "invoker"
    DEPLOYER = "deployer"
    ADMIN = "admin"


_RANK = {Role.INVOKER: 0, Role.DEPLOYER: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Rule:
    """The least role an action needs."""

    least: Role


_INVOKE = Rule(Role.INVOKER)
_DEPLOY = Rule(Role.DEPLOYER)
_ADMIN = Rule(Role.ADMIN)

_SAGEMAKER_CONTROL = tuple(
    [
        "CreateModel",
        "DescribeModel",
        "DeleteModel",
        "ListModels",
        "CreateEndpointConfig",
        "DescribeEndpointConfig",
        "DeleteEndpointConfig",
        "ListEndpointConfigs",
        "CreateEndpoint",
        "DescribeEndpoint",
        "UpdateEndpoint",
        "UpdateEndpointWeightsAndCapacities",
        "DeleteEndpoint",
        "ListEndpoints",
        "CreateTransformJob",
        "DescribeTransformJob",
        "ListTransformJobs",
        "StopTransformJob",
        "CreateCompilationJob",
        "DescribeCompilationJob",
        "ListCompilationJobs",
        "StopCompilationJob",
        "DeleteCompilationJob",
        "CreateInferenceRecommendationsJob",
        "DescribeInferenceRecommendationsJob",
        "ListInferenceRecommendationsJobs",
        "StopInferenceRecommendationsJob",
        "ListInferenceRecommendationsJobSteps",
        "CreateMonitoringSchedule",
        "DescribeMonitoringSchedule",
        "DeleteMonitoringSchedule",
        "ListMonitoringSchedules",
        "StartMonitoringSchedule",
        "StopMonitoringSchedule",
        "UpdateMonitoringSchedule",
        "ListMonitoringExecutions",
        "CreateDataQualityJobDefinition",
        "DescribeDataQualityJobDefinition",
        "ListDataQualityJobDefinitions",
        "DeleteDataQualityJobDefinition",
        "CreateModelQualityJobDefinition",
        "DescribeModelQualityJobDefinition",
        "ListModelQualityJobDefinitions",
        "DeleteModelQualityJobDefinition",
        "CreateModelExplainabilityJobDefinition",
        "DescribeModelExplainabilityJobDefinition",
        "ListModelExplainabilityJobDefinitions",
        "DeleteModelExplainabilityJobDefinition",
        "CreateProcessingJob",
        "DescribeProcessingJob",
        "ListProcessingJobs",
        "StopProcessingJob",
        "AddTags",
        "DeleteTags",
        "ListTags",
    ]
)
_SAGEMAKER_RUNTIME = ("InvokeEndpoint", "InvokeEndpointAsync", "InvokeEndpointWithResponseStream")
_AUTOSCALING = tuple(
    [
        "RegisterScalableTarget",
        "DeregisterScalableTarget",
        "DescribeScalableTargets",
        "PutScalingPolicy",
        "DeleteScalingPolicy",
        "DescribeScalingPolicies",
        "DescribeScalingActivities",
        "PutScheduledAction",
        "DeleteScheduledAction",
        "DescribeScheduledActions",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
    ]
)
# CloudWatch Logs: instance logs may hold request data, so deployers, not invokers.
_LOGS = ("DescribeLogGroups", "DescribeLogStreams", "GetLogEvents", "FilterLogEvents")
_NATIVE_DEPLOY = tuple(
    [
        "ListAlarms",
        "DescribeAlarm",
        "PutAlarm",
        "DeleteAlarm",
        "DescribeEndpointEvents",
        "GetShadowReport",
        "PromoteShadow",
        "ListEndpointModels",
        "PutPredictions",
        "DeletePredictions",
        "ListPredictionStores",
        "DescribeEndpointRouting",
        "PutEndpointRouting",
        "DeleteEndpointRouting",
        "ReplayCapture",
    ]
)
_NATIVE_ADMIN = ("CreateAccessKey", "ListAccessKeys", "RevokeAccessKey")
# CloudWatch, as AWS's managed policies split it: reading metrics and alarms is
# CloudWatchReadOnlyAccess (invoker); alarms change deployments (AutoRollbackConfiguration),
# so writing them is for deployers.
_CLOUDWATCH_READ = (
    "GetMetricStatistics",
    "GetMetricData",
    "ListMetrics",
    "DescribeAlarms",
    "DescribeAlarmsForMetric",
    "DescribeAlarmHistory",
)
_CLOUDWATCH_DEPLOY = (
    "PutMetricAlarm",
    "DeleteAlarms",
    "SetAlarmState",
    "EnableAlarmActions",
    "DisableAlarmActions",
)

ACTIONS: dict[str, Rule] = {
    **{f"sagemaker:{op}": _DEPLOY for op in _SAGEMAKER_CONTROL},
    **{f"sagemaker:{op}": _INVOKE for op in _SAGEMAKER_RUNTIME},
    **{f"application-autoscaling:{op}": _DEPLOY for op in _AUTOSCALING},
    **{f"modelhost:{op}": _DEPLOY for op in _NATIVE_DEPLOY},
    **{f"logs:{op}": _DEPLOY for op in _LOGS},
    # Batch predictions loaded into the prediction store: invokers read them like they
    # invoke, within their endpoint pattern (matched against the prediction-set name).
    "modelhost:GetPrediction": _INVOKE,
    # Rewards come from the application that invoked the endpoint.
    "modelhost:PutRewards": _INVOKE,
    # Edge devices send their capture with an invoker key for their name.
    "modelhost:PutEdgeCapture": _INVOKE,
    "modelhost:ListEdgeCaptures": _DEPLOY,
    # A model's V2 metadata and readiness: for whoever may invoke it (gateway/v2_api.py).
    "modelhost:GetModelMetadata": _INVOKE,
    # Cost advice reads no state: whoever may invoke may ask.
    "modelhost:GetAdvice": _INVOKE,
    # The dashboard's data (read-only): any valid key may view it.
    "modelhost:GetDashboard": _INVOKE,
    # Prometheus text at /metrics: what CloudWatch's GetMetricData gives an invoker too.
    "modelhost:ReadMetrics": _INVOKE,
    **{f"modelhost:{op}": _ADMIN for op in _NATIVE_ADMIN},
    **{f"cloudwatch:{op}": _INVOKE for op in _CLOUDWATCH_READ},
    **{f"cloudwatch:{op}": _DEPLOY for op in _CLOUDWATCH_DEPLOY},
    # The application that invokes an endpoint publishes its own KPIs (bandit rewards come
    # from them); the reserved AWS/ namespaces are refused to everyone.
    "cloudwatch:PutMetricData": _INVOKE,
}

SCOPED_PREFIXES = ("endpoint/", "predictions/")


def endpoint_allowed(patterns: str, name: str) -> bool:
    """Whether `name` matches one of the comma-separated glob patterns (`*`, `churn-*`)."""
    return any(fnmatchcase(name, p.strip()) for p in patterns.split(",") if p.strip())


def authorize(role: Role, action: str, resource: str, endpoints: str = "*") -> bool:
    """Whether a key with `role` and endpoint patterns `endpoints` may perform `action` on
    `resource` (`endpoint/<name>`, `predictions/<name>`, `key/<id>` or `` for none).

    Default deny: unknown actions and unknown roles are refused.
    """
    rule = ACTIONS.get(action)
    if rule is None or role not in _RANK:
        return False
    if _RANK[role] < _RANK[rule.least]:
        return False
    for prefix in SCOPED_PREFIXES:
        if resource.startswith(prefix):
            return endpoint_allowed(endpoints, resource[len(prefix) :])
    return True
