"""Which action a request asks for: the table the guard and the policy share.

The classification mirrors `Gateway` dispatch: a `POST` with `X-Amz-Target` is a JSON 1.1
control call (SageMaker or Application Auto Scaling, told apart by the target prefix, or
CloudWatch's JSON 1.0); CloudWatch's rpc-v2-cbor and query forms are control calls too; a
`POST .../endpoints/{name}/{action}` outside `/api/` is the runtime; a few health paths are
public; everything else is the native API, matched against `NATIVE_ROUTES`. A request that
matches nothing has no action, and the policy denies it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from modelhost.gateway.v2_api import parse_model_path
from modelhost.telemetry.logs import group_endpoint, group_from_arn


class Surface(enum.Enum):
    """The API a request belongs to; decides its signing service and body limit."""

    CONTROL = "control"
    RUNTIME = "runtime"
    NATIVE = "native"
    PUBLIC = "public"
    # The dashboard: its page, assets and sign-in are open (the page shows a sign-in form);
    # its data routes take a session cookie or a signature (see auth/session.py).
    DASHBOARD = "dashboard"


# X-Amz-Target prefix → (SigV4 signing name, action namespace). Add a service here.
TARGET_PREFIXES: dict[str, tuple[str, str]] = {
    "SageMaker": ("sagemaker", "sagemaker"),
    "AnyScaleFrontendService": ("application-autoscaling", "application-autoscaling"),
    # CloudWatch in its JSON 1.0 form (awsQueryCompatible); signing name `monitoring`.
    "GraniteServiceVersion20100801": ("monitoring", "cloudwatch"),
    "Logs_20140328": ("logs", "logs"),
}
# CloudWatch in rpc-v2-cbor: the operation is in the path. In the query protocol
# (form-encoded POST to `/`) it is in the body's `Action`, which the guard reads.
CLOUDWATCH_CBOR_PREFIX = "/service/GraniteServiceVersion20100801/operation/"
CLOUDWATCH_SERVICE = "monitoring"
RUNTIME_SERVICE = "sagemaker"
NATIVE_SERVICE = "sagemaker"

RUNTIME_ACTIONS = {
    "invocations": "sagemaker:InvokeEndpoint",
    "async-invocations": "sagemaker:InvokeEndpointAsync",
    "invocations-response-stream": "sagemaker:InvokeEndpointWithResponseStream",
}

PUBLIC_PATHS = frozenset({"/ping", "/healthz", "/api/openapi.json"})
# The Open Inference Protocol (gateway/v2_api.py): the gateway's health and metadata are
# public like /ping; inference is InvokeEndpoint on the endpoint (the same operation in
# another protocol); a model's metadata and readiness are for whoever may invoke it.
V2_PUBLIC_PATHS = frozenset({"/v2", "/v2/", "/v2/health/live", "/v2/health/ready"})
V2_INFER_ACTION = "sagemaker:InvokeEndpoint"
V2_METADATA_ACTION = "modelhost:GetModelMetadata"
# The generate extension's stream is InvokeEndpointWithResponseStream in another protocol.
V2_ACTIONS = {
    "infer": V2_INFER_ACTION,
    "generate": V2_INFER_ACTION,
    "generate_stream": "sagemaker:InvokeEndpointWithResponseStream",
}


@dataclass(frozen=True)
class NativeRoute:
    """One native route: `{x}` matches a path segment, `{x:path}` the rest of the path.
    `scope` names the resource kind (`endpoint`, `predictions`, `key`) taken from `{name}`."""

    method: str
    template: str
    action: str
    scope: str | None = None

    def match(self, method: str, path: str) -> str | None:
        """The resource when the request matches (`` for an unscoped route), else None."""
        if method != self.method and not (method == "HEAD" and self.method == "GET"):
            return None
        found = _compiled(self.template).match(path)
        if found is None:
            return None
        if self.scope is None:
            return ""
        return f"{self.scope}/{unquote(found.group('name'))}"


_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(template: str) -> re.Pattern[str]:
    pattern = _CACHE.get(template)
    if pattern is None:
        regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", template)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        pattern = _CACHE[template] = re.compile(f"^{regex}$")
    return pattern


NATIVE_ROUTES: tuple[NativeRoute, ...] = (
    NativeRoute("GET", "/api/alarms", "modelhost:ListAlarms"),
    NativeRoute("GET", "/api/alarms/{name}", "modelhost:DescribeAlarm"),
    NativeRoute("PUT", "/api/alarms/{name}", "modelhost:PutAlarm"),
    NativeRoute("DELETE", "/api/alarms/{name}", "modelhost:DeleteAlarm"),
    NativeRoute(
        "GET", "/api/endpoints/{name}/events", "modelhost:DescribeEndpointEvents", "endpoint"
    ),
    NativeRoute(
        "GET", "/api/endpoints/{name}/shadow-report", "modelhost:GetShadowReport", "endpoint"
    ),
    NativeRoute(
        "POST", "/api/endpoints/{name}/promote-shadow", "modelhost:PromoteShadow", "endpoint"
    ),
    # Multi-model endpoints: the models an endpoint has loaded.
    NativeRoute("GET", "/api/endpoints/{name}/models", "modelhost:ListEndpointModels", "endpoint"),
    # The cost advisor: arithmetic over the query and a bundled price table; reads no state.
    NativeRoute("GET", "/api/advise", "modelhost:GetAdvice"),
    # Replay before deploy: makes (and deletes) a temporary endpoint, so deployers.
    NativeRoute("POST", "/api/replay", "modelhost:ReplayCapture"),
    # Transform jobs through the native API carry the SageMaker action names.
    NativeRoute("GET", "/api/transform-jobs", "sagemaker:ListTransformJobs"),
    NativeRoute("POST", "/api/transform-jobs", "sagemaker:CreateTransformJob"),
    NativeRoute("GET", "/api/transform-jobs/{name}", "sagemaker:DescribeTransformJob"),
    NativeRoute("POST", "/api/transform-jobs/{name}/stop", "sagemaker:StopTransformJob"),
    # Bandit routing: deployers set it; whoever invokes the endpoint reports rewards.
    NativeRoute("GET", "/api/endpoints/{name}", "sagemaker:DescribeEndpoint", "endpoint"),
    NativeRoute(
        "GET", "/api/endpoints/{name}/routing", "modelhost:DescribeEndpointRouting", "endpoint"
    ),
    NativeRoute("PUT", "/api/endpoints/{name}/routing", "modelhost:PutEndpointRouting", "endpoint"),
    NativeRoute(
        "DELETE", "/api/endpoints/{name}/routing", "modelhost:DeleteEndpointRouting", "endpoint"
    ),
    NativeRoute("POST", "/api/endpoints/{name}/rewards", "modelhost:PutRewards", "endpoint"),
    # Prediction store lookups: the store name is scoped by the key's endpoint pattern.
    NativeRoute("GET", "/predictions", "modelhost:ListPredictionStores"),
    NativeRoute("GET", "/predictions/{name}", "modelhost:GetPrediction", "predictions"),
    NativeRoute("GET", "/predictions/{name}/{key:path}", "modelhost:GetPrediction", "predictions"),
    NativeRoute("POST", "/predictions/{name}/batch-get", "modelhost:GetPrediction", "predictions"),
    NativeRoute("POST", "/predictions/{name}/load", "modelhost:PutPredictions", "predictions"),
    NativeRoute("DELETE", "/predictions/{name}", "modelhost:DeletePredictions", "predictions"),
    NativeRoute("GET", "/api/keys", "modelhost:ListAccessKeys"),
    NativeRoute("POST", "/api/keys", "modelhost:CreateAccessKey"),
    NativeRoute("DELETE", "/api/keys/{name}", "modelhost:RevokeAccessKey", "key"),
    NativeRoute("GET", "/metrics", "modelhost:ReadMetrics"),
    # Edge devices upload their data capture under an endpoint-like name (issue 17).
    NativeRoute("POST", "/api/edge-captures/{name}", "modelhost:PutEdgeCapture", "endpoint"),
    NativeRoute("GET", "/api/edge-captures/{name}", "modelhost:ListEdgeCaptures", "endpoint"),
)


@dataclass
class Target:
    """What one request asks for; `action` is None when nothing in the tables matches."""

    surface: Surface
    service: str
    action: str | None
    resource: str


DASHBOARD_PREFIXES = ("/dashboard/", "/api/dashboard/")
# The dashboard's read-only data routes, the only ones a session cookie is good for.
DASHBOARD_ROUTES: tuple[NativeRoute, ...] = (
    NativeRoute("GET", "/api/dashboard/snapshot", "modelhost:GetDashboard"),
    NativeRoute("GET", "/api/dashboard/advise", "modelhost:GetAdvice"),
)


def dashboard_target(method: str, raw_path: str) -> Target | None:
    """The dashboard's target for its paths, else None."""
    if raw_path != "/dashboard" and not raw_path.startswith(DASHBOARD_PREFIXES):
        return None
    for route in DASHBOARD_ROUTES:
        resource = route.match(method, raw_path)
        if resource is not None:
            return Target(Surface.DASHBOARD, NATIVE_SERVICE, route.action, resource)
    return Target(Surface.DASHBOARD, NATIVE_SERVICE, None, "")


def classify(
    method: str,
    raw_path: str,
    target_header: str | None,
    metrics_public: bool,
    form: bool = False,
) -> Target:
    """`form`: a form-encoded body (the query protocol); its action comes from the body."""
    if method == "POST" and raw_path.startswith(CLOUDWATCH_CBOR_PREFIX):
        operation = unquote(raw_path[len(CLOUDWATCH_CBOR_PREFIX) :])
        action = f"cloudwatch:{operation}" if operation and "/" not in operation else None
        return Target(Surface.CONTROL, CLOUDWATCH_SERVICE, action, "")
    if method == "POST" and form and raw_path in ("/", ""):
        return Target(Surface.CONTROL, CLOUDWATCH_SERVICE, None, "")
    if method == "POST" and target_header is not None:
        prefix, _, operation = target_header.partition(".")
        service, namespace = TARGET_PREFIXES.get(prefix, ("sagemaker", ""))
        action = f"{namespace}:{operation}" if namespace and operation else None
        return Target(Surface.CONTROL, service, action, "")
    if raw_path == "/v2" or raw_path.startswith("/v2/"):
        return v2_target(method, raw_path)
    if method == "POST" and "/endpoints/" in raw_path and not raw_path.startswith("/api/"):
        parts = raw_path.split("/")
        action = RUNTIME_ACTIONS.get(parts[-1]) if len(parts) >= 4 else None
        if len(parts) < 4 or parts[-3] != "endpoints":
            action = None
        name = unquote(parts[-2]) if len(parts) >= 4 else ""
        return Target(Surface.RUNTIME, RUNTIME_SERVICE, action, f"endpoint/{name}")
    dashboard = dashboard_target(method, raw_path)
    if dashboard is not None:
        return dashboard
    path = unquote(raw_path)
    if method in ("GET", "HEAD") and (
        path in PUBLIC_PATHS or (metrics_public and path == "/metrics")
    ):
        return Target(Surface.PUBLIC, NATIVE_SERVICE, None, "")
    for route in NATIVE_ROUTES:
        resource = route.match(method, raw_path)
        if resource is not None:
            return Target(Surface.NATIVE, NATIVE_SERVICE, route.action, resource)
    return Target(Surface.NATIVE, NATIVE_SERVICE, None, "")


def v2_target(method: str, raw_path: str) -> Target:
    """A V2 request's target; its body counts against the runtime's payload limit."""
    if method in ("GET", "HEAD") and raw_path in V2_PUBLIC_PATHS:
        return Target(Surface.PUBLIC, NATIVE_SERVICE, None, "")
    path = parse_model_path(method, raw_path)
    if path is None or method not in ("GET", "HEAD", "POST"):
        return Target(Surface.RUNTIME, RUNTIME_SERVICE, None, "")
    action = V2_ACTIONS.get(path.verb, V2_METADATA_ACTION)
    return Target(Surface.RUNTIME, RUNTIME_SERVICE, action, f"endpoint/{path.endpoint}")


def query_action(target: Target, body: bytes) -> None:
    """Fill a query-protocol request's action from its form body (`Action=...`)."""
    if target.service != CLOUDWATCH_SERVICE or target.action is not None:
        return
    operation = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
    if operation.isalnum():
        target.action = f"cloudwatch:{operation}"


def control_resource(params: Any) -> str:
    """The endpoint a control call names, if any: `EndpointName`, an autoscaling
    `ResourceId` of the form `endpoint/<name>/variant/<variant>`, or an endpoint's log
    group (`/aws/sagemaker/Endpoints/<name>`)."""
    if not isinstance(params, dict):
        return ""
    name = params.get("EndpointName")
    if isinstance(name, str):
        return f"endpoint/{name}"
    group = params.get("logGroupName") or params.get("logGroupIdentifier")
    if isinstance(group, str) and (endpoint := group_endpoint(group_from_arn(group))):
        return f"endpoint/{endpoint}"
    resource_id = params.get("ResourceId")
    if isinstance(resource_id, str) and resource_id.startswith("endpoint/"):
        return "endpoint/" + resource_id.split("/")[1]
    return ""
