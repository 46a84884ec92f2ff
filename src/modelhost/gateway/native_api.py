"""modelhost's own REST API, beside the SageMaker-compatible ones: `/api/...`.

Alarms: `PUT /api/alarms/{name}` (body: CloudWatch PutMetricAlarm members), `GET
/api/alarms`, `GET /api/alarms/{name}` (with state history), `DELETE /api/alarms/{name}`.
Endpoint events: `GET /api/endpoints/{name}/events`.
Shadow variants: `GET /api/endpoints/{name}/shadow-report?tolerance=1e-6`,
`POST /api/endpoints/{name}/promote-shadow`.
Bandit routing: `GET/PUT/DELETE /api/endpoints/{name}/routing` (body: RoutingConfig),
`POST /api/endpoints/{name}/rewards` (`{"InferenceId", "Reward"}` or `{"Rewards": [...]}`).
Native describe: `GET /api/endpoints/{name}` (DescribeEndpoint plus `Routing`, and
`Instances`: each instance's batching counters and compiled-tier state).
Multi-model endpoints: `GET /api/endpoints/{name}/models` (what each instance holds).
Cost advice: `GET /api/advise?Live=false&RequestsPerDay=...&Prices=seeds-2021` (advisor.py).
Replay before deploy: `POST /api/replay` (body: CaptureUri, ModelName, EndpointConfig,
Tolerance, Baseline; monitor/replay_run.py), answered with the report when it is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost.errors import NotFound, ValidationException
from modelhost.gateway.native_json import error_response, json_object
from modelhost.store.metadata import Kind, MetadataStore
from modelhost.telemetry import shadow_report
from modelhost.telemetry.alarms import AlarmBook

if TYPE_CHECKING:
    from modelhost.control.service import ControlPlane


class NativeAPI:
    """Routes for alarms and endpoint events."""

    def __init__(
        self,
        alarms: AlarmBook,
        store: MetadataStore,
        control: ControlPlane | None = None,
        home: Path | None = None,
        replayer: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.alarms = alarms
        self.store = store
        self.control = control
        self.home = home
        self.replayer = replayer
        # Each instance's own stats (gateway/instance_stats.py), in the native describe.
        self.instances: Callable[[str], list[dict[str, Any]]] = lambda _name: []

    def routes(self) -> list[Route]:
        return [
            Route("/api/alarms", self.list_alarms, methods=["GET"]),
            Route("/api/alarms/{name}", self.alarm, methods=["GET", "PUT", "DELETE"]),
            Route("/api/endpoints/{name}/events", self.events, methods=["GET"]),
            Route("/api/endpoints/{name}/shadow-report", self.shadow_report, methods=["GET"]),
            Route("/api/endpoints/{name}/promote-shadow", self.promote_shadow, methods=["POST"]),
            Route("/api/endpoints/{name}", self.describe_endpoint, methods=["GET"]),
            Route("/api/endpoints/{name}/routing", self.routing, methods=["GET", "PUT", "DELETE"]),
            Route("/api/endpoints/{name}/rewards", self.rewards, methods=["POST"]),
            Route("/api/endpoints/{name}/models", self.models, methods=["GET"]),
            Route("/api/advise", self.advise, methods=["GET"]),
            Route("/api/replay", self.replay, methods=["POST"]),
        ]

    async def list_alarms(self, _request: Request) -> Response:
        return JSONResponse({"MetricAlarms": self.alarms.describe()})

    async def alarm(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            if request.method == "PUT":
                body = await json_object(request)
                body["AlarmName"] = name
                self.alarms.put(body)
                return JSONResponse(self.alarms.describe(name)[0])
            if request.method == "DELETE":
                if not self.alarms.delete(name):
                    raise NotFound(f"Alarm {name} does not exist.")
                return JSONResponse({})
            found = self.alarms.describe(name)
            if not found:
                raise NotFound(f"Alarm {name} does not exist.")
            return JSONResponse(found[0])
        except Exception as exc:
            return error_response(exc)

    async def events(self, request: Request) -> Response:
        name = request.path_params["name"]
        rec = self.store.get(Kind.ENDPOINT, name)
        if rec is None:
            return error_response(NotFound(f"Endpoint {name} does not exist."))
        return JSONResponse({"EndpointName": name, "Events": rec.spec.get("Events", [])})

    async def shadow_report(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            if self.store.get(Kind.ENDPOINT, name) is None:
                raise NotFound(f"Endpoint {name} does not exist.")
            try:
                tolerance = float(request.query_params.get("tolerance", "1e-6"))
            except ValueError as exc:
                raise ValidationException(f"tolerance must be a number: {exc}") from exc
            if not tolerance >= 0:
                raise ValidationException("tolerance must be a number >= 0.")
            assert self.home is not None
            out = await asyncio.to_thread(shadow_report.report, self.home, name, tolerance)
            return JSONResponse(out)
        except Exception as exc:
            return error_response(exc)

    async def promote_shadow(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            if self.store.get(Kind.ENDPOINT, name) is None:
                raise NotFound(f"Endpoint {name} does not exist.")
            assert self.control is not None
            return JSONResponse(self.control.promote_shadow(name))
        except Exception as exc:
            return error_response(exc)

    async def describe_endpoint(self, request: Request) -> Response:
        """DescribeEndpoint with modelhost's extension: the routing in effect."""
        name = request.path_params["name"]
        try:
            assert self.control is not None
            if self.store.get(Kind.ENDPOINT, name) is None:
                raise NotFound(f"Endpoint {name} does not exist.")
            out = self.control.operations["DescribeEndpoint"]({"EndpointName": name})
            routing = self.control.bandits.describe(name)
            routing.pop("EndpointName", None)
            return JSONResponse({**out, "Routing": routing, "Instances": self.instances(name)})
        except Exception as exc:
            return error_response(exc)

    async def routing(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            assert self.control is not None
            if self.store.get(Kind.ENDPOINT, name) is None:
                raise NotFound(f"Endpoint {name} does not exist.")
            bandits = self.control.bandits
            if request.method == "PUT":
                return JSONResponse(bandits.put(name, await json_object(request)))
            if request.method == "DELETE":
                return JSONResponse(bandits.delete(name))
            return JSONResponse(bandits.describe(name))
        except Exception as exc:
            return error_response(exc)

    async def rewards(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            assert self.control is not None
            if self.store.get(Kind.ENDPOINT, name) is None:
                raise NotFound(f"Endpoint {name} does not exist.")
            return JSONResponse(self.control.bandits.reward(name, await json_object(request)))
        except Exception as exc:
            return error_response(exc)

    async def models(self, request: Request) -> Response:
        from modelhost.gateway.model_listing import loaded_models

        name = request.path_params["name"]
        try:
            if self.store.get(Kind.ENDPOINT, name) is None:
                raise NotFound(f"Endpoint {name} does not exist.")
            assert self.control is not None
            controller = self.control.controller
            timeout_s = controller.settings.ping_timeout_s
            return JSONResponse(await loaded_models(controller, name, timeout_s))
        except Exception as exc:
            return error_response(exc)

    async def advise(self, request: Request) -> Response:
        """The cost advisor over the query's workload (`advice`)."""
        try:
            return JSONResponse(advice(dict(request.query_params)))
        except Exception as exc:
            return error_response(exc)

    async def replay(self, request: Request) -> Response:
        """Replay captured traffic against a candidate model (blocking work, in a thread:
        it calls this server's own API through boto3, as the CLI does)."""
        try:
            assert self.replayer is not None
            body = await json_object(request)
            return JSONResponse(await asyncio.to_thread(self.replayer, body))
        except Exception as exc:
            return error_response(exc)


def advice(params: dict[str, str]) -> dict[str, Any]:
    """`GET /api/advise` (and the dashboard's form): the advisor over the workload in
    `params`; `Prices` names a bundled table (the server reads no file a client names)."""
    from modelhost.loadtest.advisor import advise, parse_workload
    from modelhost.loadtest.prices import BUNDLED, load_prices

    params = dict(params)
    prices = params.pop("Prices", "default")
    if prices not in BUNDLED:
        raise ValidationException(f"Prices must be one of {', '.join(BUNDLED)}.")
    return advise(parse_workload(params), load_prices(prices))
