"""The invocation data plane with fakes: retries, health reports, error mapping."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ModelError, ServiceUnavailable, ValidationError
from modelhost.fleet.dataplane.core import Invoker, Sent
from modelhost.fleet.dataplane.plane import DataPlane, Invocation, Limits
from modelhost.fleet.http1 import InstanceDisconnected
from modelhost.fleet.instance import Instance
from modelhost.routing.choose import pick_instance
from modelhost.routing.table import EndpointRoute, RoutingTable, Target, TargetMode, VariantRoute
from modelhost.telemetry.metrics import InvocationMetrics
from modelhost.testing.dataplane import (
    FakeHealth,
    FakeRoutes,
    FakeTransport,
    Handler,
    Reply,
    answer,
    instance,
)


def core(transport: FakeTransport, health: FakeHealth, timeout_s: float = 5.0) -> Invoker:
    return Invoker(transport, health, lambda: 0.0, timeout_s, lambda e, _path: f"arn:log:{e}")


async def send(core: Invoker, instances: list[Instance]) -> Sent:
    def pick(tried: frozenset[str]) -> Target | None:
        return pick_instance(instances, core.rand, tried)

    async def attempt(inst: Instance) -> Sent:
        status, headers, body = await core.post(inst, b"/invocations", [], b"x")
        return Sent(status, headers, body, inst, 0.0)

    return await core.run("ep", "AllTraffic", pick, attempt)


def raising(*errors: BaseException) -> Handler:
    """Raises each error once, in order, then answers 200."""
    pending = list(errors)

    async def handler(*_args: Any) -> Reply:
        if pending:
            raise pending.pop(0)
        return 200, {}, b"ok"

    return handler


def test_unreachable_is_reported_and_retried_on_another_instance() -> None:
    a, b = instance("a", 1), instance("b", 2)
    transport = FakeTransport({b.address: answer(body=b"from b")})  # a: nothing listens
    health = FakeHealth()
    sent = asyncio.run(send(core(transport, health), [a, b]))
    assert (sent.body, sent.instance) == (b"from b", b)
    assert health.reported == [("ep", "a")]
    assert [c.address for c in transport.calls] == [("10.0.0.1", 1), ("10.0.0.1", 2)]
    assert a.outstanding == b.outstanding == 0


def test_nothing_reachable_is_service_unavailable() -> None:
    health = FakeHealth()
    with pytest.raises(ServiceUnavailable, match="could be reached"):
        asyncio.run(send(core(FakeTransport(), health), [instance("a", 1), instance("b", 2)]))
    assert sorted(health.reported) == [("ep", "a"), ("ep", "b")]


def test_a_broken_keep_alive_connection_to_a_live_instance_is_retried_once() -> None:
    a = instance("a", 1)
    transport = FakeTransport({a.address: raising(InstanceDisconnected("closed"))})
    health = FakeHealth()
    sent = asyncio.run(send(core(transport, health), [a]))
    assert sent.status == 200 and len(transport.calls) == 2
    assert health.reported == []


def test_a_second_broken_connection_is_service_unavailable() -> None:
    a = instance("a", 1)
    errors = (InstanceDisconnected("closed"), InstanceDisconnected("closed again"))
    transport = FakeTransport({a.address: raising(*errors)})
    health = FakeHealth()
    with pytest.raises(ServiceUnavailable, match="stopped while serving"):
        asyncio.run(send(core(transport, health), [a]))
    assert health.reported == [("ep", "a")]


def test_a_broken_connection_to_a_dead_instance_is_not_resent() -> None:
    a = instance("a", 1)
    transport = FakeTransport({a.address: raising(InstanceDisconnected("closed"))})
    health = FakeHealth(dead={"a"})
    with pytest.raises(ServiceUnavailable, match="Instance a of variant AllTraffic stopped"):
        asyncio.run(send(core(transport, health), [a]))
    assert len(transport.calls) == 1 and health.reported == [("ep", "a")]


def test_a_timeout_is_model_error_with_status_0() -> None:
    a = instance("a", 1)
    transport = FakeTransport({a.address: raising(TimeoutError())})
    with pytest.raises(ModelError) as info:
        asyncio.run(send(core(transport, FakeHealth(), timeout_s=2.5), [a]))
    assert info.value.original_status_code == 0
    assert "timed out while waiting for a response from container primary" in info.value.message
    assert info.value.original_message == "Invocation timed out after 2.5 s"
    assert info.value.log_stream_arn == "arn:log:ep"
    assert a.outstanding == 0


# --- the data plane: variants, kinds, error mapping ----------------------------------


def plane(
    tmp_path: Path,
    route: EndpointRoute,
    transport: FakeTransport,
    health: FakeHealth | None = None,
) -> DataPlane:
    limits = Limits(timeout_s=5.0, max_payload_bytes=1000, model_busy_outstanding=8, home=tmp_path)
    return DataPlane(
        FakeRoutes(RoutingTable({route.name: route})),
        health or FakeHealth(),
        transport,
        lambda: 0.0,
        lambda _name: None,
        InvocationMetrics(),
        limits,
        lambda e, _path: f"arn:log:{e}",
    )


def request(target_model: str | None = None) -> Invocation:
    forward = [(b"content-type", b"text/csv")]
    return Invocation("ep", dict(forward), forward, b"1,2", target_model, None, 0.0, "req-1")


def invoke(p: DataPlane, req: Invocation) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    route = p.route(req.endpoint, "123456789012")
    return asyncio.run(p.invoke(route, req, []))


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_a_model_error_status_is_model_error_with_the_original_status(
    tmp_path: Path, status: int
) -> None:
    a = instance("a", 1)
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
    transport = FakeTransport({a.address: answer(status, b"bad row 3")})
    with pytest.raises(ModelError) as info:
        invoke(plane(tmp_path, route, transport), request())
    kind = "client" if status < 500 else "server"
    assert info.value.message == (
        f'Received {kind} error ({status}) from primary with message "bad row 3". '
        "See /logs/a.log for more information."
    )
    assert (info.value.original_status_code, info.value.original_message) == (status, "bad row 3")


def test_an_answer_names_the_variant_and_keeps_the_content_type(tmp_path: Path) -> None:
    a = instance("a", 1)
    route = EndpointRoute("ep", (VariantRoute("Blue", 1.0, (a,)),))
    transport = FakeTransport({a.address: answer(body=b"0.5", content_type=b"text/csv")})
    status, headers, body = invoke(plane(tmp_path, route, transport), request())
    assert (status, body) == (200, b"0.5")
    assert (b"content-type", b"text/csv") in headers
    assert (b"x-amzn-invoked-production-variant", b"Blue") in headers
    assert transport.calls[0].path == b"/invocations"
    assert transport.calls[0].headers == [(b"content-type", b"text/csv")]


def test_no_instance_is_service_unavailable(tmp_path: Path) -> None:
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, ()),))
    with pytest.raises(ServiceUnavailable, match="no healthy instance"):
        invoke(plane(tmp_path, route, FakeTransport()), request())


def test_instances_are_typed_targets_with_addresses() -> None:
    a = instance("a", 8080, host="10.1.2.3")
    assert a.address == ("10.1.2.3", 8080) and a.base_url == "http://10.1.2.3:8080"
    assert a.mode == TargetMode.SINGLE_MODEL
    assert instance("m", 1, model_data_prefix="s3://b/p/").mode == TargetMode.MULTI_MODEL


# --- multi-model ------------------------------------------------------------------------


def mme_handler(invoke_statuses: list[int], loads: list[dict[str, Any]]) -> Handler:
    """POST /models records the load; invocations answer the scripted statuses."""

    async def handler(method: bytes, path: bytes, _h: Any, body: bytes) -> Reply:
        if path == b"/models":
            loads.append(json.loads(body))
            return 200, {}, json.dumps({"loadingTimeUs": 1000}).encode()
        status = invoke_statuses.pop(0) if len(invoke_statuses) > 1 else invoke_statuses[0]
        return status, {b"content-type": b"text/plain"}, b"model says hi"

    return handler


def mme_route(*instances: Instance) -> EndpointRoute:
    return EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, instances, "s3://bucket/p"),))


def test_a_404_reloads_the_model_on_the_same_instance(tmp_path: Path) -> None:
    a, b = (instance(i, n, model_data_prefix="s3://bucket/p") for i, n in (("a", 1), ("b", 2)))
    loads: list[dict[str, Any]] = []
    transport = FakeTransport({a.address: mme_handler([404, 200], loads)})
    a.models.add("CA.tar.gz")  # routing believes a holds it; the instance lost it
    b.outstanding = 5
    status, _headers, body = invoke(
        plane(tmp_path, mme_route(a, b), transport), request("CA.tar.gz")
    )
    assert (status, body) == (200, b"model says hi")
    assert [load["model_name"] for load in loads] == ["CA.tar.gz"]
    assert {c.address for c in transport.calls} == {a.address}
    assert transport.calls[-1].path == b"/models/CA.tar.gz/invoke"
    assert a.models == {"CA.tar.gz"}


def test_a_404_after_two_reloads_reaches_the_caller(tmp_path: Path) -> None:
    a = instance("a", 1, model_data_prefix="s3://bucket/p")
    loads: list[dict[str, Any]] = []
    transport = FakeTransport({a.address: mme_handler([404], loads)})
    with pytest.raises(ModelError) as info:
        invoke(plane(tmp_path, mme_route(a), transport), request("CA.tar.gz"))
    assert info.value.original_status_code == 404
    assert len(loads) == 3  # the first load and MAX_RELOADS reloads


def test_reloads_after_a_404_announce_their_request(tmp_path: Path) -> None:
    """The first load may be shared with other requests; each reload is this request's
    own and asks the instance to keep the model for it (`expect_use`)."""
    a = instance("a", 1, model_data_prefix="s3://bucket/p")
    loads: list[dict[str, Any]] = []
    transport = FakeTransport({a.address: mme_handler([404, 404, 200], loads)})
    status, _headers, _body = invoke(plane(tmp_path, mme_route(a), transport), request("CA.tar.gz"))
    assert status == 200
    assert [load.get("expect_use", False) for load in loads] == [False, True, True]


def test_a_hit_whose_instance_is_unreachable_loads_on_another(tmp_path: Path) -> None:
    """A hit is sent inline (no pick/attempt closures); when its instance cannot be
    reached the request goes the general way: reported, then loaded and answered on the
    next instance."""
    a, b = (instance(i, n, model_data_prefix="s3://bucket/p") for i, n in (("a", 1), ("b", 2)))
    a.models.add("CA.tar.gz")
    loads: list[dict[str, Any]] = []
    transport = FakeTransport({b.address: mme_handler([200], loads)})  # a: nothing listens
    health = FakeHealth()
    status, _headers, body = invoke(
        plane(tmp_path, mme_route(a, b), transport, health), request("CA.tar.gz")
    )
    assert (status, body) == (200, b"model says hi")
    assert health.reported == [("ep", "a")]
    assert [load["model_name"] for load in loads] == ["CA.tar.gz"]
    assert b.models == {"CA.tar.gz"} and a.outstanding == b.outstanding == 0


def test_a_hit_answered_404_reloads_twice_at_most(tmp_path: Path) -> None:
    a = instance("a", 1, model_data_prefix="s3://bucket/p")
    a.models.add("CA.tar.gz")
    loads: list[dict[str, Any]] = []
    transport = FakeTransport({a.address: mme_handler([404], loads)})
    with pytest.raises(ModelError) as info:
        invoke(plane(tmp_path, mme_route(a), transport), request("CA.tar.gz"))
    assert info.value.original_status_code == 404
    # The hit, then MAX_RELOADS reloads of its own (each announcing the request).
    assert [load.get("expect_use", False) for load in loads] == [True, True]
    assert a.outstanding == 0


def test_instances_get_the_artifact_location(tmp_path: Path) -> None:
    a = instance("a", 1, model_data_prefix="s3://bucket/p")
    loads: list[dict[str, Any]] = []
    transport = FakeTransport({a.address: mme_handler([200], loads)})
    invoke(plane(tmp_path, mme_route(a), transport), request("CA.tar.gz"))
    assert loads == [{"model_name": "CA.tar.gz", "url": "s3://bucket/p/CA.tar.gz"}]


def test_a_location_the_instance_cannot_fetch_is_the_callers_error(tmp_path: Path) -> None:
    a = instance("a", 1, model_data_prefix="s3://bucket/p")

    async def handler(method: bytes, path: bytes, _h: Any, body: bytes) -> Reply:
        message = "Failed to download model data for CA.tar.gz at s3://bucket/p/CA.tar.gz"
        return 404, {}, json.dumps({"artifactError": True, "message": message}).encode()

    with pytest.raises(ValidationError, match="Failed to download model data"):
        invoke(
            plane(tmp_path, mme_route(a), FakeTransport({a.address: handler})), request("CA.tar.gz")
        )
    assert a.models == set()


def test_models_evicted_by_a_load_leave_the_routing_record(tmp_path: Path) -> None:
    a = instance("a", 1, model_data_prefix="s3://bucket/p")
    a.models.update({"NY.tar.gz", "TX.tar.gz"})

    async def handler(method: bytes, path: bytes, _h: Any, body: bytes) -> Reply:
        if path == b"/models":
            evicted = [{"modelName": "NY.tar.gz", "unloadingTimeUs": 5}]
            return 200, {}, json.dumps({"evicted": evicted}).encode()
        return 200, {}, b"ok"

    transport = FakeTransport({a.address: handler})
    invoke(plane(tmp_path, mme_route(a), transport), request("CA.tar.gz"))
    assert a.models == {"TX.tar.gz", "CA.tar.gz"}


# --- the single-model fast path keeps the core's rules ---------------------------------


def test_single_model_retries_an_unreachable_instance_and_reports_it(tmp_path: Path) -> None:
    a, b = instance("a", 1), instance("b", 2)
    a.outstanding = 0
    b.outstanding = 1  # a is picked first, and cannot be reached
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a, b)),))
    transport = FakeTransport({b.address: answer(body=b"from b")})
    health = FakeHealth()
    status, _headers, body = invoke(plane(tmp_path, route, transport, health), request())
    assert (status, body) == (200, b"from b")
    assert health.reported == [("ep", "a")]
    assert [c.address for c in transport.calls] == [a.address, b.address]
    assert (a.outstanding, b.outstanding) == (0, 1)


def test_single_model_with_nothing_reachable_is_service_unavailable(tmp_path: Path) -> None:
    a, b = instance("a", 1), instance("b", 2)
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a, b)),))
    health = FakeHealth()
    with pytest.raises(ServiceUnavailable, match="No instance of variant AllTraffic"):
        invoke(plane(tmp_path, route, FakeTransport(), health), request())
    assert sorted(health.reported) == [("ep", "a"), ("ep", "b")]


def test_single_model_resends_once_over_a_broken_keep_alive_connection(tmp_path: Path) -> None:
    a = instance("a", 1)
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
    transport = FakeTransport({a.address: raising(InstanceDisconnected("closed"))})
    health = FakeHealth()
    status, _headers, _body = invoke(plane(tmp_path, route, transport, health), request())
    assert status == 200 and len(transport.calls) == 2 and health.reported == []
    twice = (InstanceDisconnected("closed"), InstanceDisconnected("again"))
    transport = FakeTransport({a.address: raising(*twice)})
    with pytest.raises(ServiceUnavailable, match="stopped while serving"):
        invoke(plane(tmp_path, route, transport, health), request())
    assert health.reported == [("ep", "a")] and a.outstanding == 0


def test_single_model_timeout_is_model_error_and_counted(tmp_path: Path) -> None:
    a = instance("a", 1)
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
    transport = FakeTransport({a.address: raising(TimeoutError())})
    p = plane(tmp_path, route, transport)
    with pytest.raises(ModelError) as info:
        invoke(p, request())
    assert info.value.original_status_code == 0 and a.outstanding == 0


def test_single_model_metrics_count_invocations_and_errors(tmp_path: Path) -> None:
    a = instance("a", 1)
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
    transport = FakeTransport({a.address: [answer(), answer(500, b"boom")]})
    p = plane(tmp_path, route, transport)
    invoke(p, request())
    with pytest.raises(ModelError):
        invoke(p, request())
    text = p.metrics.exposition().decode()
    labels = '{EndpointName="ep",VariantName="AllTraffic"}'
    assert f"Invocations_total{labels} 2.0" in text
    assert f"Invocation5XXErrors_total{labels} 1.0" in text
    assert f"Invocation4XXErrors_total{labels} 0.0" in text
    assert f"ModelLatency_count{labels} 2.0" in text


def test_capture_offers_sampled_answers_and_nothing_when_off(tmp_path: Path) -> None:
    from modelhost.resources.capture import CaptureConfig
    from modelhost.telemetry.capture import CaptureBuffer

    a = instance("a", 1)
    cfg = CaptureConfig(100, "/tmp/capture", True, True)
    buffer = CaptureBuffer(10)
    transport = FakeTransport({a.address: answer(body=b"0.5", content_type=b"text/csv")})
    for capture in (cfg, None):
        route = EndpointRoute("ep", (VariantRoute("Blue", 1.0, (a,)),), capture=capture)
        p = plane(tmp_path, route, transport)
        p.capture = buffer
        assert invoke(p, request())[0] == 200
    (item,) = buffer.drain()
    assert (item.endpoint, item.variant, item.input_body, item.output_body) == (
        "ep",
        "Blue",
        b"1,2",
        b"0.5",
    )
    assert item.input_type == b"text/csv" and item.output_type == b"text/csv"
