"""Scheduled actions with a fake clock: when schedules last fired, and the first pass
after a restart running only the latest action missed while the gateway was down."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from modelhost.scaling import schedule
from modelhost.scaling.activities import Activities
from modelhost.scaling.book import Dimension, ScalingBook
from modelhost.scaling.capacity import Capacity
from modelhost.scaling.scheduled import THROUGH, ScheduledActions
from modelhost.scaling.service import ScalingService
from modelhost.store.metadata import MetadataStore
from modelhost.testing.clock import FakeClock

DIM = "sagemaker:variant:DesiredInstanceCount"
RID = "endpoint/ep/variant/AllTraffic"
T0 = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC).timestamp()


class OneVariant(Capacity):
    """Stands in for the endpoint: one variant with one instance."""

    def __init__(self) -> None:
        pass

    def current(self, endpoint: str, variant: str, dim: Dimension) -> int | None:
        return 1

    def endpoint(self, name: str) -> None:
        return None


def _at(t: float) -> str:
    return f"at({dt.datetime.fromtimestamp(t, dt.UTC).strftime('%Y-%m-%dT%H:%M:%S')})"


@pytest.fixture()
def world(tmp_path: Path) -> tuple[ScalingService, ScalingBook, ScheduledActions, FakeClock]:
    clock = FakeClock(T0)
    book = ScalingBook(MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}"), "us-east-1", "1", clock)
    capacity = OneVariant()
    service = ScalingService(book, capacity)
    service.call(
        "RegisterScalableTarget",
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": RID,
            "ScalableDimension": DIM,
            "MinCapacity": 1,
            "MaxCapacity": 5,
        },
    )
    return service, book, ScheduledActions(book, Activities(book, capacity)), clock


def _put(service: ScalingService, name: str, when: str, low: int) -> None:
    service.call(
        "PutScheduledAction",
        {
            "ServiceNamespace": "sagemaker",
            "ScheduledActionName": name,
            "ResourceId": RID,
            "ScalableDimension": DIM,
            "Schedule": when,
            "ScalableTargetAction": {"MinCapacity": low},
        },
    )


def test_last_fire_of_each_schedule_kind() -> None:
    at = schedule.parse(_at(T0 + 60))
    assert schedule.last_fire(at, T0, T0 + 120, T0) == T0 + 60
    assert schedule.last_fire(at, T0 + 60, T0 + 120, T0) is None
    rate = schedule.parse("rate(5 minutes)")
    assert schedule.last_fire(rate, T0, T0 + 1000, T0) == T0 + 900
    assert schedule.last_fire(rate, T0 + 901, T0 + 1000, T0) is None
    daily = schedule.parse("cron(30 9 * * ? *)", "Europe/Berlin")  # 08:30 UTC in December
    assert schedule.last_fire(daily, T0, T0 + 2 * 86400, T0) == T0 + 86400 + 1800
    assert schedule.last_fire(daily, T0, T0 + 1800, T0) == T0 + 1800
    assert schedule.last_fire(daily, T0 + 1800, T0 + 3600, T0) is None


def test_the_first_pass_after_a_restart_runs_only_the_latest_missed_action(
    world: tuple[ScalingService, ScalingBook, ScheduledActions, FakeClock],
) -> None:
    service, book, actions, clock = world
    _put(service, "early", _at(T0 + 60), 2)
    _put(service, "late", _at(T0 + 120), 3)
    _put(service, "later", _at(T0 + 900), 4)
    target = book.targets()[0]
    assert not actions.run(target, T0 - 1, T0, suspended=False)  # a pass, then the gateway dies
    assert target.spec[THROUGH] == T0
    clock.advance(600)  # the gateway was down while "early" and "late" were due
    target = book.targets()[0]
    assert actions.run(target, None, clock(), suspended=False)
    assert target.spec["MinCapacity"] == 3
    (done,) = book.activities(RID, DIM)
    assert done["Cause"] == (
        "scheduled action name late was triggered (due at 2026-12-07T08:02:00Z while the "
        "gateway was down)"
    )
    assert done["Description"] == "Setting min capacity to 3 and max capacity to 5"
    # Later passes run what fires from now on, once.
    assert not actions.run(target, clock(), clock.advance(1), suspended=False)
    last = clock()
    assert actions.run(target, last, clock.advance(300), suspended=False)
    assert target.spec["MinCapacity"] == 4
    assert book.activities(RID, DIM)[0]["Cause"] == "scheduled action name later was triggered"


def test_suspended_scheduled_scaling_is_not_replayed_after_a_restart(
    world: tuple[ScalingService, ScalingBook, ScheduledActions, FakeClock],
) -> None:
    service, book, actions, clock = world
    _put(service, "soon", _at(T0 + 5), 2)
    target = book.targets()[0]
    assert not actions.run(target, T0 - 1, clock.advance(10), suspended=True)
    clock.advance(60)
    assert not actions.run(target, None, clock(), suspended=False)
    assert target.spec["MinCapacity"] == 1 and book.activities(RID, DIM) == []


def test_an_action_put_before_the_first_pass_still_runs_after_a_restart(
    world: tuple[ScalingService, ScalingBook, ScheduledActions, FakeClock],
) -> None:
    service, book, actions, clock = world
    _put(service, "soon", _at(T0 + 5), 2)
    clock.advance(60)  # the gateway died before any pass stored ScheduledThrough
    target = book.targets()[0]
    assert THROUGH not in target.spec
    assert actions.run(target, None, clock(), suspended=False)
    assert target.spec["MinCapacity"] == 2
