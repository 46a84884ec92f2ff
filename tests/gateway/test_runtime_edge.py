"""The runtime API's HTTP edge with fakes: a fake snapshot source, health sink and
instance transport; no processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from modelhost.fleet.dataplane.plane import DataPlane, Limits
from modelhost.gateway.runtime_api import RuntimeAPI
from modelhost.routing.table import (
    EndpointRoute,
    RoutingTable,
    ShadowRoute,
    VariantRoute,
)
from modelhost.telemetry import shadow_report
from modelhost.telemetry.metrics import InvocationMetrics
from modelhost.testing.dataplane import (
    FakeHealth,
    FakeRoutes,
    FakeTransport,
    Reply,
    answer,
    instance,
)

ACCOUNT = "123456789012"


class FakeBandit:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def observe(self, inference_id: str, variant: str) -> None:
        self.seen.append((inference_id, variant))


def make_api(
    tmp_path: Path,
    routes: FakeRoutes,
    transport: FakeTransport,
    bandits: dict[str, Any] | None = None,
) -> RuntimeAPI:
    limits = Limits(timeout_s=5.0, max_payload_bytes=1000, model_busy_outstanding=8, home=tmp_path)
    plane = DataPlane(
        routes,
        FakeHealth(),
        transport,
        lambda: 0.0,
        (bandits or {}).get,
        InvocationMetrics(),
        limits,
        lambda e, _path: f"arn:log:{e}",
    )
    return RuntimeAPI(plane, 1000, ACCOUNT)


async def call(
    api: RuntimeAPI, endpoint: str, body: bytes = b"1,2", headers: dict[bytes, bytes] | None = None
) -> tuple[int, dict[bytes, bytes], bytes]:
    path = f"/endpoints/{endpoint}/invocations"
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "headers": [(b"content-type", b"text/csv"), *(headers or {}).items()],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await api(scope, receive, send)
    start, end = sent
    return start["status"], dict(start["headers"]), end["body"]


def one_variant(*instances: Any, name: str = "AllTraffic") -> FakeRoutes:
    return FakeRoutes(
        RoutingTable({"ep": EndpointRoute("ep", (VariantRoute(name, 1, instances),))})
    )


def test_an_invocation_is_answered_from_the_snapshot(tmp_path: Path) -> None:
    a = instance("a", 1)
    transport = FakeTransport({a.address: answer(body=b"0.25", content_type=b"text/csv")})
    status, headers, body = asyncio.run(call(make_api(tmp_path, one_variant(a), transport), "ep"))
    assert (status, body) == (200, b"0.25")
    assert headers[b"x-amzn-invoked-production-variant"] == b"AllTraffic"
    assert headers[b"content-type"] == b"text/csv"


def test_an_unknown_endpoint_is_a_validation_error(tmp_path: Path) -> None:
    api = make_api(tmp_path, FakeRoutes(), FakeTransport())
    status, headers, body = asyncio.run(call(api, "nope"))
    assert status == 400 and headers[b"x-amzn-errortype"] == b"ValidationError"
    assert json.loads(body)["Message"] == f"Endpoint nope of account {ACCOUNT} not found."


def test_the_snapshot_is_read_per_request(tmp_path: Path) -> None:
    routes = FakeRoutes()
    a = instance("a", 1)
    api = make_api(tmp_path, routes, FakeTransport({a.address: answer()}))
    assert asyncio.run(call(api, "ep"))[0] == 400
    routes.table = one_variant(a).table  # published by the control plane meanwhile
    assert asyncio.run(call(api, "ep"))[0] == 200


def test_headers_are_validated_at_the_edge(tmp_path: Path) -> None:
    api = make_api(tmp_path, one_variant(instance("a", 1)), FakeTransport())
    status, _headers, body = asyncio.run(
        call(api, "ep", headers={b"x-amzn-sagemaker-inference-id": b"x" * 65})
    )
    assert status == 400 and "inferenceId" in json.loads(body)["Message"]
    status, _headers, body = asyncio.run(call(api, "ep", body=b""))
    assert status == 400 and "must not be empty" in json.loads(body)["Message"]


def test_an_unknown_target_variant_is_a_validation_error(tmp_path: Path) -> None:
    api = make_api(tmp_path, one_variant(instance("a", 1)), FakeTransport())
    status, _h, body = asyncio.run(
        call(api, "ep", headers={b"x-amzn-sagemaker-target-variant": b"Green"})
    )
    assert status == 400
    assert json.loads(body)["Message"] == "Variant Green not found for endpoint ep."


def test_a_bandit_sees_which_variant_answered(tmp_path: Path) -> None:
    a = instance("a", 1)
    bandit = FakeBandit()
    api = make_api(tmp_path, one_variant(a, name="Blue"), FakeTransport({a.address: answer()}))
    api.plane.bandits = {"ep": bandit}.get
    _status, headers, _body = asyncio.run(
        call(api, "ep", headers={b"x-amzn-sagemaker-inference-id": b"id-7"})
    )
    assert bandit.seen == [("id-7", "Blue")]
    assert headers[b"x-modelhost-inference-id"] == b"id-7"


def test_a_shadow_copy_never_delays_the_answer(tmp_path: Path) -> None:
    prod, shadow = instance("a", 1), instance("s", 2, variant="Shadow")
    release = asyncio.Event()

    async def slow_shadow(*_args: Any) -> Reply:
        await release.wait()
        return 200, {b"content-type": b"text/csv"}, b"0.3"

    transport = FakeTransport({prod.address: answer(body=b"0.2"), shadow.address: slow_shadow})
    route = EndpointRoute(
        "ep",
        (VariantRoute("AllTraffic", 1, (prod,)),),
        shadows=(ShadowRoute("Shadow", 1.0, (shadow,)),),
    )
    api = make_api(tmp_path, FakeRoutes(RoutingTable({"ep": route})), transport)

    async def scenario() -> None:
        status, _headers, body = await call(api, "ep")
        assert (status, body) == (200, b"0.2")  # answered while the shadow still waits
        assert len(api.plane.shadows.tasks) == 1
        release.set()
        await asyncio.gather(*api.plane.shadows.tasks)

    asyncio.run(scenario())
    [pair] = shadow_report.read_pairs(tmp_path, "ep", "Shadow")
    assert pair["production"]["variant"] == "AllTraffic"
    assert pair["shadow"]["variant"] == "Shadow" and pair["shadow"]["status"] == 200
