"""Batch transform's invoker over the data plane's core, with a fake fleet and transport."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelhost.fleet.http1 import InstanceDisconnected
from modelhost.fleet.instance import Instance
from modelhost.jobs.instances import concurrency
from modelhost.jobs.invoke import InvocationFailed, Invoker, Rejection
from modelhost.resources.status import InstanceStatus
from modelhost.testing.dataplane import FakeTransport, Reply, answer, instance


class FakeFleet:
    def __init__(self, *instances: Instance) -> None:
        self.instances = list(instances)
        self.spec = instances[0].spec

    def serving(self) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.status == InstanceStatus.IN_SERVICE)

    def mark_unreachable(self, inst: Instance) -> None:
        inst.status = InstanceStatus.UNHEALTHY


def invoker(fleet: FakeFleet, transport: FakeTransport, retries: int = 1) -> Invoker:
    inv = Invoker(fleet, transport, [], 2.0, retries, 1.0)  # type: ignore[arg-type]
    return inv


def test_an_unreachable_instance_leaves_service_and_another_answers() -> None:
    a, b = instance("a", 1), instance("b", 2)
    b.outstanding = 1  # least outstanding: a is tried first
    fleet = FakeFleet(a, b)
    got = asyncio.run(invoker(fleet, FakeTransport({b.address: answer(body=b"1\n")})).post(b"x"))
    assert got == b"1\n" and b.outstanding == 1
    assert a.status == InstanceStatus.UNHEALTHY and fleet.serving() == (b,)


def test_a_model_error_is_a_rejection_and_not_retried() -> None:
    a = instance("a", 1)
    transport = FakeTransport({a.address: answer(415, b"unsupported")})
    got = asyncio.run(invoker(FakeFleet(a), transport).post(b"x"))
    assert got == Rejection(415, "unsupported") and len(transport.calls) == 1


def test_timeouts_spend_the_retries() -> None:
    a = instance("a", 1)

    async def hang(*_args: Any) -> Reply:
        raise TimeoutError

    transport = FakeTransport({a.address: hang})
    with pytest.raises(InvocationFailed, match=r"InvocationsTimeoutInSeconds \(2 s\)"):
        asyncio.run(invoker(FakeFleet(a), transport, retries=2).post(b"x"))
    assert len(transport.calls) == 3


def test_a_broken_connection_is_retried_by_the_retry_policy() -> None:
    a, b = instance("a", 1), instance("b", 2)
    b.outstanding = 1  # least outstanding: a is tried first
    transport = FakeTransport({b.address: answer(body=b"ok")})

    async def broken(*_args: Any) -> Reply:
        raise InstanceDisconnected("the instance closed the connection")

    transport.handlers[a.address] = broken
    got = asyncio.run(invoker(FakeFleet(a, b), transport).post(b"x"))
    assert got == b"ok" and a.status == InstanceStatus.UNHEALTHY


def test_concurrency_asks_the_instance_at_its_own_address() -> None:
    """A Ray-placed instance listens on its node's address, not this machine's loopback."""
    a = instance("a", 8080, host="127.0.1.2")
    transport = FakeTransport({a.address: answer(body=b'{"MaxConcurrentTransforms": 4}')})
    got = asyncio.run(concurrency({}, FakeFleet(a), transport))  # type: ignore[arg-type]
    assert got == 4 and transport.calls[0].path == b"/execution-parameters"
    assert asyncio.run(concurrency({"MaxConcurrentTransforms": 2}, FakeFleet(a), transport)) == 2  # type: ignore[arg-type]
