"""modelhost's own REST API for edge devices' data capture: `/api/edge-captures/{name}`.

`POST /api/edge-captures/{name}?file=<name>.jsonl` with a JSON Lines body of data-capture
records stores the file (what an edge server's store-and-forward uploads);
`GET /api/edge-captures/{name}` lists the stored files and their record counts.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost.compile.edge_capture import EdgeCaptures
from modelhost.errors import ValidationException
from modelhost.gateway.native_json import error_response


class EdgeCaptureAPI:
    """Routes that receive and list edge capture files."""

    def __init__(self, captures: EdgeCaptures) -> None:
        self.captures = captures

    def routes(self) -> list[Route]:
        return [Route("/api/edge-captures/{name}", self.handle, methods=["GET", "POST"])]

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            if request.method == "GET":
                return JSONResponse(self.captures.list(name))
            file_name = request.query_params.get("file")
            if not file_name:
                raise ValidationException(
                    "The query parameter 'file' (the file's name) is required."
                )
            body = await request.body()  # bounded by the guard's API body limit
            records = self.captures.put(name, file_name, body)
            return JSONResponse({"Name": name, "File": file_name, "Records": records})
        except Exception as exc:
            return error_response(exc)
