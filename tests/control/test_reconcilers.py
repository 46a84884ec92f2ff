"""The controller's reconcilers over fake instances and a fake clock (no processes)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from modelhost.control.reconcilers.bandits import BanditReconciler
from modelhost.control.reconcilers.endpoints import EndpointReconciler
from modelhost.resources.status import EndpointStatus, InstanceStatus
from modelhost.store.metadata import Kind
from tests.control.harness import Harness, snapshot, variant

A = variant("A", "model-a", count=2, weight=3.0)
B = variant("B", "model-b", count=1, weight=1.0)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())  # type: ignore[arg-type]


def weights(h: Harness, name: str) -> dict[str, float]:
    route = h.controller.table.endpoints[name]
    return {v.name: v.weight for v in route.variants}


def test_create_deploys_every_variant_then_marks_in_service(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        h.put("ep", snapshot("cfg", A, B), EndpointStatus.CREATING)
        h.clock.advance(5)
        await h.settle()
        rec = h.record("ep")
        assert rec is not None and rec.status == EndpointStatus.IN_SERVICE
        assert rec.failure_reason is None
        assert rec.modified_s == h.clock.now()
        assert len(h.provider.serving("A")) == 2 and len(h.provider.serving("B")) == 1
        route = h.controller.table.endpoints["ep"]
        assert route.unavailable_reason is None
        assert {v.name: len(v.instances) for v in route.variants} == {"A": 2, "B": 1}
        assert weights(h, "ep") == {"A": 3.0, "B": 1.0}
        # Idempotent: more passes start nothing and write nothing.
        started, modified = len(h.provider.started), rec.modified_s
        h.clock.advance(5)
        await h.settle()
        assert len(h.provider.started) == started
        rec = h.record("ep")
        assert rec is not None and rec.modified_s == modified

    run(body)


def test_a_model_that_cannot_start_fails_the_endpoint_with_the_reason(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        h.provider.failing.add("model-b")
        h.put("ep", snapshot("cfg", A, B), EndpointStatus.CREATING)
        await h.settle()
        rec = h.record("ep")
        assert rec is not None and rec.status == EndpointStatus.FAILED
        assert "exited with status 1" in (rec.failure_reason or "")
        assert h.provider.running == {}  # what did start was stopped again
        assert h.controller.deployment("ep") is None
        assert "Failed" in (h.controller.table.endpoints["ep"].unavailable_reason or "")
        assert h.fleets.fleets == frozenset()

    run(body)


def test_creating_endpoint_is_unavailable_until_in_service(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        h.put("ep", snapshot("cfg", A), EndpointStatus.CREATING)
        reconciler = EndpointReconciler(h.state)
        reconciler.step(h.state.status.load())
        route = h.controller.table.endpoints["ep"]
        assert route.variants == ()
        assert "Creating" in (route.unavailable_reason or "")
        # A second step while the create runs starts nothing more.
        first = h.state.transitions.running()
        reconciler.step(h.state.status.load())
        assert h.state.transitions.running() == first and len(first) == 1
        await asyncio.gather(*first)
        assert h.controller.table.endpoints["ep"].unavailable_reason is None

    run(body)


def test_in_service_without_fleets_is_redeployed_after_a_restart(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        h.put("ep", snapshot("cfg", A), EndpointStatus.IN_SERVICE)
        await h.settle()
        assert len(h.provider.serving("A")) == 2
        assert h.controller.deployment("ep") is not None

    run(body)


def test_endpoint_instances_are_detached_and_the_sweep_spares_busy_endpoints(
    harness: Harness,
) -> None:
    """Endpoint instances may outlive their gateway (Ray); the sweep of left-behind ones
    never touches an endpoint in a transition (its rebuild may be adopting them)."""
    h = harness
    asked: list[bool] = []

    async def sweep(claimed: Callable[[str], bool]) -> int:
        asked.append(claimed("ep"))
        return 0

    h.provider.sweep = sweep  # type: ignore[method-assign]

    async def body() -> None:
        h.put("ep", snapshot("cfg", A), EndpointStatus.IN_SERVICE)
        await h.settle()
        assert all(i.spec.detached for i in h.provider.serving("A"))
        await h.controller.sweep()
        h.state.transitions.spawn("ep", asyncio.sleep(0))
        await h.controller.sweep()
        await asyncio.gather(*h.state.transitions.running())
        assert asked == [False, True]

    run(body)


def test_a_controller_that_stops_releases_its_instances(harness: Harness) -> None:
    """Stepping down or stopping: instances that outlive the gateway (Ray) are released
    for the next leader, not stopped (the provider decides; local ones stop)."""
    h = harness
    released: list[object] = []

    async def release(instance: object, grace_s: float) -> None:
        released.append(instance)

    h.provider.release = release  # type: ignore[method-assign,assignment]

    async def body() -> None:
        h.put("ep", snapshot("cfg", A), EndpointStatus.IN_SERVICE)
        await h.settle()
        await h.controller.stop()
        assert len(released) == 2 and len(h.provider.running) == 2 and not h.provider.stopped

    run(body)


def test_delete_stops_fleets_and_forgets_the_endpoint(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        h.put("ep", snapshot("cfg", A, B), EndpointStatus.CREATING)
        await h.settle()
        h.put("ep", snapshot("cfg", A, B), EndpointStatus.DELETING)
        await h.settle()
        assert h.record("ep") is None
        assert "ep" not in h.controller.table.endpoints
        assert h.provider.running == {}
        assert len(h.provider.stopped) == 3
        assert h.fleets.fleets == frozenset()

    run(body)


def test_fleets_of_an_endpoint_gone_from_the_store_are_stopped(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        h.put("ep", snapshot("cfg", A), EndpointStatus.CREATING)
        await h.settle()
        h.store.delete(h.store.get(Kind.ENDPOINT, "ep").kind, "ep")  # type: ignore[union-attr]
        await h.settle()
        assert h.provider.running == {}
        assert h.controller.deployment("ep") is None

    run(body)


def test_weights_and_capacities_scale_fleets_and_publish_new_weights(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        spec = snapshot("cfg", A, B)
        h.put("ep", spec, EndpointStatus.CREATING)
        await h.settle()
        spec["PendingWeights"] = {
            "A": {"DesiredWeight": 1.0, "DesiredInstanceCount": None},
            "B": {"DesiredWeight": 4.0, "DesiredInstanceCount": 3},
        }
        h.put("ep", spec, EndpointStatus.UPDATING)
        await h.settle()
        rec = h.record("ep")
        assert rec is not None and rec.status == EndpointStatus.IN_SERVICE
        assert "PendingWeights" not in rec.spec
        variants = {v["VariantName"]: v for v in rec.spec["Config"]["ProductionVariants"]}
        assert variants["B"]["InitialInstanceCount"] == 3
        assert variants["B"]["InitialVariantWeight"] == 4.0
        assert variants["A"]["InitialInstanceCount"] == 2
        assert len(h.provider.serving("B")) == 3
        assert weights(h, "ep") == {"A": 1.0, "B": 4.0}

    run(body)


def test_weights_update_that_cannot_start_instances_keeps_what_runs(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        spec = snapshot("cfg", A, B)
        h.put("ep", spec, EndpointStatus.CREATING)
        await h.settle()
        h.provider.failing.add("model-b")
        spec["PendingWeights"] = {"B": {"DesiredWeight": 9.0, "DesiredInstanceCount": 2}}
        h.put("ep", spec, EndpointStatus.UPDATING)
        await h.settle()
        rec = h.record("ep")
        assert rec is not None and rec.status == EndpointStatus.IN_SERVICE
        assert (rec.failure_reason or "").startswith("Update failed: variant B:")
        variants = {v["VariantName"]: v for v in rec.spec["Config"]["ProductionVariants"]}
        assert variants["B"]["InitialInstanceCount"] == 1
        assert variants["B"]["InitialVariantWeight"] == 1.0
        assert len(h.provider.serving("B")) == 1

    run(body)


def update_to(h: Harness, new: dict[str, object], deployment: dict[str, object] | None) -> None:
    rec = h.record("ep")
    assert rec is not None
    spec = dict(rec.spec)
    pending = dict(new, StartTime=h.clock.now())
    if deployment:
        pending["DeploymentConfig"] = deployment
        spec["DeploymentConfig"] = deployment
    spec["Pending"] = pending
    h.put("ep", spec, EndpointStatus.UPDATING)


def test_update_endpoint_moves_to_the_new_config_and_retires_the_old(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        h.put("ep", snapshot("cfg-1", A), EndpointStatus.CREATING)
        await h.settle()
        old = set(h.provider.running)
        update_to(h, snapshot("cfg-2", variant("A", "model-c", count=1)), None)
        await h.settle()
        rec = h.record("ep")
        assert rec is not None and rec.status == EndpointStatus.IN_SERVICE
        assert rec.spec["EndpointConfigName"] == "cfg-2"
        assert "model-c" in rec.spec["Models"] and "Pending" not in rec.spec
        assert not old & set(h.provider.running)  # blue is stopped
        assert [i.spec.model_name for i in h.provider.running.values()] == ["model-c"]
        assert rec.spec["Events"][-1]["Message"] == "now serving cfg-2"
        dep = h.controller.deployment("ep")
        assert dep is not None and dep.config_name == "cfg-2"

    run(body)


def test_update_whose_new_fleet_fails_stays_on_the_old_config(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        h.put("ep", snapshot("cfg-1", A), EndpointStatus.CREATING)
        await h.settle()
        old = set(h.provider.running)
        h.provider.failing.add("model-c")
        update_to(h, snapshot("cfg-2", variant("A", "model-c")), None)
        await h.settle()
        rec = h.record("ep")
        assert rec is not None and rec.status == EndpointStatus.IN_SERVICE
        assert rec.spec["EndpointConfigName"] == "cfg-1" and "Pending" not in rec.spec
        assert (rec.failure_reason or "").startswith("Update failed:")
        assert set(h.provider.running) == old

    run(body)


BLUE_GREEN = {
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            "WaitIntervalInSeconds": 0,
        }
    },
    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "errors"}]},
}


def test_blue_green_canary_shifts_traffic_in_steps(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        h.put("ep", snapshot("cfg-1", A), EndpointStatus.CREATING)
        await h.settle()
        h.controller.alarm_state = lambda _name: "OK"
        update_to(h, snapshot("cfg-2", variant("A", "model-c", count=2)), BLUE_GREEN)
        await h.settle()
        rec = h.record("ep")
        assert rec is not None and rec.status == EndpointStatus.IN_SERVICE
        assert rec.spec["EndpointConfigName"] == "cfg-2"
        messages = [e["Message"] for e in rec.spec["Events"]]
        assert any("50% of traffic on the new fleet" in m for m in messages)
        assert any("100% of traffic on the new fleet" in m for m in messages)
        assert rec.spec["DeploymentConfig"] == BLUE_GREEN  # retained for later updates

    run(body)


def test_blue_green_rolls_back_when_an_alarm_fires(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        h.put("ep", snapshot("cfg-1", A), EndpointStatus.CREATING)
        await h.settle()
        old = set(h.provider.running)
        h.controller.alarm_state = lambda _name: "ALARM"
        update_to(h, snapshot("cfg-2", variant("A", "model-c", count=2)), BLUE_GREEN)
        await h.settle()
        rec = h.record("ep")
        assert rec is not None and rec.status == EndpointStatus.IN_SERVICE
        assert rec.spec["EndpointConfigName"] == "cfg-1"
        assert "alarm errors went into ALARM" in (rec.failure_reason or "")
        assert rec.spec["Events"][-1]["Message"] == "rolled back to cfg-1"
        assert set(h.provider.running) == old

    run(body)


def test_rolling_update_replaces_instances_batch_by_batch(harness: Harness) -> None:
    h = harness
    rolling = {
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
            "WaitIntervalInSeconds": 0,
        }
    }

    async def body() -> None:
        h.put("ep", snapshot("cfg-1", A), EndpointStatus.CREATING)
        await h.settle()
        update_to(h, snapshot("cfg-2", variant("A", "model-c", count=2)), rolling)
        await h.settle()
        rec = h.record("ep")
        assert rec is not None and rec.spec["EndpointConfigName"] == "cfg-2"
        steps = [e["Message"] for e in rec.spec["Events"] if e["Status"] == "ActivatingTraffic"]
        assert steps == [
            "rolling step 1/2: A 1 new / 1 old",
            "rolling step 2/2: A 2 new / 0 old",
        ]
        assert sorted(i.spec.model_name for i in h.provider.running.values()) == ["model-c"] * 2

    run(body)


def test_bandits_follow_the_records(harness: Harness) -> None:
    h = harness
    spec = snapshot("cfg", A, B)
    spec["Routing"] = {"RoutingConfig": {"Strategy": "EpsilonGreedy", "Epsilon": 0.1}}
    h.put("ep", spec, EndpointStatus.IN_SERVICE)
    reconciler = BanditReconciler(h.state)
    reconciler.step(h.state.status.load())
    bandit = h.controller.bandits.get("ep")
    assert bandit is not None
    reconciler.step(h.state.status.load())
    assert h.controller.bandits.get("ep") is bandit  # idempotent
    del spec["Routing"]
    h.put("ep", spec, EndpointStatus.IN_SERVICE)
    reconciler.step(h.state.status.load())
    assert h.controller.bandits.get("ep") is None


def test_request_path_surface_marks_unreachable_and_reads_exit_codes(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        h.put("ep", snapshot("cfg", A), EndpointStatus.CREATING)
        await h.settle()
        instance = h.controller.table.endpoints["ep"].variants[0].instances[0]
        assert h.controller.provider.exit_code(instance) is None
        assert h.controller.is_alive(instance)
        h.controller.report_unreachable("ep", instance)
        assert instance.status == InstanceStatus.UNHEALTHY
        assert len(h.controller.table.endpoints["ep"].variants[0].instances) == 1
        # The next health round finds it answering again and puts it back.
        await h.controller.check_health()
        assert instance.status == InstanceStatus.IN_SERVICE
        # A crashed instance is replaced by the health round.
        h.provider.crash(instance)
        assert h.controller.provider.exit_code(instance) == 137
        assert not h.controller.is_alive(instance)
        await h.controller.check_health()
        await asyncio.sleep(0.05)
        assert len(h.provider.serving("A")) == 2
        assert instance not in h.provider.serving("A")
        await h.controller.stop()
        assert h.provider.running == {}

    run(body)
