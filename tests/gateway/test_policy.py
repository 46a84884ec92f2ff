"""The policy: every (role, action) pair, endpoint patterns, default deny, and a table entry
for every action the gateway can dispatch."""

from __future__ import annotations

import pytest
from starlette.routing import Mount, Route

from modelhost.control.service import ControlPlane
from modelhost.gateway.auth.actions import (
    NATIVE_ROUTES,
    RUNTIME_ACTIONS,
    TARGET_PREFIXES,
    Surface,
    classify,
    control_resource,
    query_action,
)
from modelhost.gateway.auth.policy import ACTIONS, Role, authorize, endpoint_allowed
from modelhost.settings import Settings

# Stated independently of the table: what each role is for (issue 7).
INVOKER_ACTIONS = {
    "sagemaker:InvokeEndpoint",
    "sagemaker:InvokeEndpointAsync",
    "sagemaker:InvokeEndpointWithResponseStream",
    "modelhost:GetPrediction",
    # Bandit rewards come from the application that invokes the endpoint.
    "modelhost:PutRewards",
    # CloudWatch: reading metrics and alarms (CloudWatchReadOnlyAccess), and publishing the
    # application's own metrics (issue 12).
    "cloudwatch:GetMetricStatistics",
    "cloudwatch:GetMetricData",
    "cloudwatch:ListMetrics",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:DescribeAlarmsForMetric",
    "cloudwatch:DescribeAlarmHistory",
    "cloudwatch:PutMetricData",
    # Edge devices upload the data capture of the model they serve (issue 17).
    "modelhost:PutEdgeCapture",
    # Cost advice is arithmetic over the query; it reads no state (issue 15).
    "modelhost:GetAdvice",
    # The dashboard's data: any valid key may view it (issue 12).
    "modelhost:GetDashboard",
    # A model's V2 metadata and readiness, for whoever may invoke it (issue 20).
    "modelhost:GetModelMetadata",
    # Prometheus text at /metrics: the same numbers GetMetricData gives (issue 20).
    "modelhost:ReadMetrics",
}
DASHBOARD = Surface.DASHBOARD
ADMIN_ONLY = {"modelhost:CreateAccessKey", "modelhost:ListAccessKeys", "modelhost:RevokeAccessKey"}


def _expected(role: Role, action: str) -> bool:
    if role is Role.ADMIN:
        return True
    if role is Role.DEPLOYER:
        return action not in ADMIN_ONLY
    return action in INVOKER_ACTIONS


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("role", list(Role))
def test_every_role_against_every_action(role: Role, action: str) -> None:
    assert authorize(role, action, "") is _expected(role, action)
    # The same with an endpoint the key's pattern allows, and one it does not.
    assert authorize(role, action, "endpoint/churn-a", "churn-*") is _expected(role, action)
    assert authorize(role, action, "endpoint/fraud", "churn-*") is False


def test_unknown_actions_and_roles_are_denied() -> None:
    for role in Role:
        assert not authorize(role, "sagemaker:CreateTrainingJob", "")
        assert not authorize(role, "", "")
        assert not authorize(role, "sagemaker:invokeendpoint", "")
    assert not authorize("root", "sagemaker:ListModels", "")  # type: ignore[arg-type]


def test_endpoint_patterns() -> None:
    assert endpoint_allowed("*", "anything")
    assert endpoint_allowed("churn-*, fraud", "fraud")
    assert not endpoint_allowed("churn-*", "Churn-a")  # case-sensitive, like endpoint names
    assert not endpoint_allowed("", "x")
    assert authorize(Role.INVOKER, "modelhost:GetPrediction", "predictions/churn-1", "churn-*")
    assert not authorize(Role.INVOKER, "modelhost:GetPrediction", "predictions/x", "churn-*")


def _control_operations() -> list[str]:
    plane = ControlPlane(Settings(), None, None)  # type: ignore[arg-type]
    return sorted(plane.operations)


def test_every_dispatchable_action_has_a_table_entry(tmp_path: object) -> None:
    # Control plane (SageMaker JSON 1.1): every operation the API serves.
    for op in _control_operations():
        target = classify("POST", "/", f"SageMaker.{op}", True)
        assert target.action in ACTIONS, op
    # Application Auto Scaling, whichever operations exist on this branch.
    assert TARGET_PREFIXES["AnyScaleFrontendService"][0] == "application-autoscaling"
    # CloudWatch in its three wire forms: every operation the API serves.
    from modelhost.telemetry.cloudwatch import CloudWatch

    for op in CloudWatch(None, None, "r", "a").operations:  # type: ignore[arg-type]
        cbor = classify(
            "POST", f"/service/GraniteServiceVersion20100801/operation/{op}", None, True
        )
        json_10 = classify("POST", "/", f"GraniteServiceVersion20100801.{op}", True)
        form = classify("POST", "/", None, True, form=True)
        query_action(form, f"Action={op}&Version=2010-08-01".encode())
        for target in (cbor, json_10, form):
            assert target.service == "monitoring" and target.action == f"cloudwatch:{op}", op
            assert target.action in ACTIONS, op
    # Runtime.
    for suffix, action in RUNTIME_ACTIONS.items():
        assert classify("POST", f"/endpoints/e/{suffix}", None, True).action == action
        assert action in ACTIONS
    # The Open Inference Protocol (V2): inference is InvokeEndpoint on the endpoint.
    for method, path, action, resource in (
        ("POST", "/v2/models/e/infer", "sagemaker:InvokeEndpoint", "endpoint/e"),
        ("POST", "/v2/models/e/versions/A/infer", "sagemaker:InvokeEndpoint", "endpoint/e"),
        ("POST", "/v2/models/e/CA.tar.gz/infer", "sagemaker:InvokeEndpoint", "endpoint/e"),
        ("POST", "/v2/models/e%2FCA.tar.gz/infer", "sagemaker:InvokeEndpoint", "endpoint/e"),
        ("GET", "/v2/models/e", "modelhost:GetModelMetadata", "endpoint/e"),
        ("GET", "/v2/models/e/ready", "modelhost:GetModelMetadata", "endpoint/e"),
        ("GET", "/v2/models/e/versions/A/ready", "modelhost:GetModelMetadata", "endpoint/e"),
    ):
        target = classify(method, path, None, True)
        assert (target.surface, target.action, target.resource) == (
            Surface.RUNTIME,
            action,
            resource,
        ), path
        assert action in ACTIONS
    for path in ("/v2", "/v2/health/live", "/v2/health/ready"):
        assert classify("GET", path, None, True).surface is Surface.PUBLIC
    assert classify("POST", "/v2/models/e/ready", None, True).action is None
    assert classify("DELETE", "/v2/models/e", None, True).action is None
    # Native routes: every Starlette route the gateway mounts, for every method.
    from modelhost.gateway.app import Gateway

    settings = Settings(home=tmp_path)  # type: ignore[arg-type]
    gateway = Gateway(settings)
    try:
        for route in gateway.other.routes:
            if isinstance(route, Mount):  # the dashboard's static assets
                assert classify("GET", route.path + "/x.js", None, False).surface is DASHBOARD
                continue
            assert isinstance(route, Route)
            if route.path in ("/ping", "/healthz", "/api/openapi.json"):
                continue
            path = route.path.replace("{name}", "x")
            for method in sorted(route.methods or {"GET"}):
                if method == "HEAD":
                    continue
                target = classify(method, path, None, False)
                if path.startswith("/api/dashboard/"):
                    # Read-only data, for a session cookie or a signature.
                    assert (method, target.surface) == ("GET", DASHBOARD), route.path
                    assert target.action in ACTIONS, (method, route.path)
                elif path.startswith("/dashboard"):
                    # The page, sign-in and sign-out: open, the guard limits them.
                    assert (target.surface, target.action) == (DASHBOARD, None), route.path
                else:
                    assert target.surface is Surface.NATIVE, (method, route.path)
                    assert target.action in ACTIONS, (method, route.path)
    finally:
        gateway.store.close()
    for native in NATIVE_ROUTES:
        assert native.action in ACTIONS, native


def test_resources_named_by_requests() -> None:
    assert classify("POST", "/endpoints/a%20b/invocations", None, True).resource == "endpoint/a b"
    assert classify("GET", "/api/endpoints/e1/events", None, True).resource == "endpoint/e1"
    assert classify("GET", "/predictions/set1/key/with/slashes", None, True).resource == (
        "predictions/set1"
    )
    assert classify("GET", "/metrics", None, True).surface is Surface.PUBLIC
    assert classify("GET", "/metrics", None, False).action == "modelhost:ReadMetrics"
    assert classify("GET", "/nowhere", None, True).action is None
    assert classify("POST", "/endpoints/e/bogus", None, True).action is None
    assert control_resource({"EndpointName": "e"}) == "endpoint/e"
    assert control_resource({"ResourceId": "endpoint/e/variant/v"}) == "endpoint/e"
    assert control_resource({"ModelName": "m"}) == ""
    assert control_resource([1]) == ""
