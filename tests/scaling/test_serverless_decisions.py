"""The serverless scaling decisions, as pure functions of counts and a clock."""

from __future__ import annotations

from modelhost.scaling.serverless import admit, idle_to_stop, starts_needed, utilization
from modelhost.testing.clock import FakeClock


def test_admits_up_to_max_concurrency_then_throttles() -> None:
    assert admit(0, 1) and not admit(1, 1)
    assert admit(4, 5) and not admit(5, 5)


def test_a_waiting_request_gets_an_instance_started_unless_one_covers_it() -> None:
    # From zero: the first request starts one instance.
    assert starts_needed(waiting=1, idle=0, starting=0, live=0, max_concurrency=3) == 1
    # A start already under way serves it.
    assert starts_needed(waiting=1, idle=0, starting=1, live=1, max_concurrency=3) == 0
    # Three requests at once: three instances, capped by MaxConcurrency.
    assert starts_needed(waiting=3, idle=0, starting=0, live=0, max_concurrency=3) == 3
    assert starts_needed(waiting=3, idle=0, starting=0, live=2, max_concurrency=3) == 1
    assert starts_needed(waiting=2, idle=1, starting=0, live=1, max_concurrency=3) == 1


def test_idle_instances_stop_after_the_timeout_down_to_provisioned() -> None:
    clock = FakeClock()
    used = {"a": clock(), "b": clock.advance(5)}
    clock.advance(6)  # a idle 11 s, b idle 6 s
    assert idle_to_stop(used, set(), clock(), idle_s=10, keep=0) == ["a"]
    clock.advance(4)
    assert idle_to_stop(used, set(), clock(), idle_s=10, keep=0) == ["a", "b"]
    # ProvisionedConcurrency keeps that many warm (the most recently used stays).
    assert idle_to_stop(used, set(), clock(), idle_s=10, keep=1) == ["a"]
    assert idle_to_stop(used, set(), clock(), idle_s=10, keep=2) == []
    # A busy instance never stops.
    assert idle_to_stop(used, {"a"}, clock(), idle_s=10, keep=0) == ["b"]


def test_utilization_is_running_over_max() -> None:
    assert utilization(1, 4) == 0.25 and utilization(0, 0) == 0.0
