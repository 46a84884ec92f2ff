"""modelhost's own REST API for transform jobs: `/api/transform-jobs`.

`POST /api/transform-jobs` (body: CreateTransformJob members, plus the optional
`PredictionStore: {StoreName, KeyColumn}`), `GET /api/transform-jobs` (query
`NameContains`, `StatusEquals`), `GET /api/transform-jobs/{name}` (DescribeTransformJob
plus `Modelhost: {Progress, Objects, PredictionStore}`), `POST
/api/transform-jobs/{name}/stop`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost.control.validation import validate_input
from modelhost.errors import ValidationException
from modelhost.gateway.native_json import error_response, json_object
from modelhost.jobs.manager import TransformJobs


class JobsAPI:
    """Routes for transform jobs with modelhost's extensions (progress, prediction store)."""

    def __init__(self, jobs: TransformJobs) -> None:
        self.jobs = jobs

    def routes(self) -> list[Route]:
        return [
            Route("/api/transform-jobs", self.collection, methods=["GET", "POST"]),
            Route("/api/transform-jobs/{name}", self.describe, methods=["GET"]),
            Route("/api/transform-jobs/{name}/stop", self.stop, methods=["POST"]),
        ]

    async def collection(self, request: Request) -> Response:
        try:
            if request.method == "POST":
                body = await json_object(request)
                option = body.pop("PredictionStore", None)
                if option is not None and not isinstance(option, dict):
                    raise ValidationException(
                        "PredictionStore must be an object: {StoreName, KeyColumn}."
                    )
                validate_input("CreateTransformJob", body)
                return JSONResponse(self.jobs.create_transform_job(body, option))
            params: dict[str, Any] = {"MaxResults": 100}
            for key in ("NameContains", "StatusEquals", "NextToken"):
                if key in request.query_params:
                    params[key] = request.query_params[key]
            return JSONResponse(self.jobs.call("ListTransformJobs", params))
        except Exception as exc:
            return error_response(exc)

    async def describe(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            out = self.jobs.call("DescribeTransformJob", {"TransformJobName": name})
            out["Modelhost"] = self.jobs.extension(name)
            return JSONResponse(out)
        except Exception as exc:
            return error_response(exc)

    async def stop(self, request: Request) -> Response:
        try:
            name = request.path_params["name"]
            return JSONResponse(self.jobs.call("StopTransformJob", {"TransformJobName": name}))
        except Exception as exc:
            return error_response(exc)
