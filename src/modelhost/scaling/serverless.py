"""Serverless scaling decisions: admit or throttle, start instances, stop idle ones.

Pure functions of counts and times (the caller's clock), tested without processes; the
pool that applies them is `scaling/serverless_pool.py`.

The model is SageMaker's (and Lambda's): MaxConcurrency bounds the concurrent invocations
of the variant, and each instance serves one invocation at a time, so a variant runs at
most MaxConcurrency instances. A request that finds no idle instance gets a new one
started for it (a cold start) rather than a refusal; instances idle for `idle_s` stop,
down to ProvisionedConcurrency (0 by default: no instance runs while idle).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def admit(in_flight: int, max_concurrency: int) -> bool:
    """Whether one more invocation may run (`in_flight` are running or waiting already)."""
    return in_flight < max_concurrency


def starts_needed(waiting: int, idle: int, starting: int, live: int, max_concurrency: int) -> int:
    """Instances to start now: one for each waiting request that neither an idle instance
    nor one already starting will serve, within MaxConcurrency instances in all (`live`
    counts serving and starting instances)."""
    uncovered = waiting - idle - starting
    room = max_concurrency - live
    return max(0, min(uncovered, room))


def idle_to_stop(
    last_used_s: Mapping[str, float],
    busy: Collection[str],
    now_s: float,
    idle_s: float,
    keep: int,
) -> list[str]:
    """The instances to stop: idle (not `busy`) since at least `idle_s`, longest idle
    first, leaving `keep` (ProvisionedConcurrency) instances running. `last_used_s` holds
    every serving instance's last use (or start)."""
    expired = sorted(
        (t, name) for name, t in last_used_s.items() if name not in busy and now_s - t >= idle_s
    )
    room = max(0, len(last_used_s) - keep)
    return [name for _t, name in expired[:room]]


def utilization(in_flight: int, max_concurrency: int) -> float:
    """ServerlessConcurrentExecutionsUtilization: running invocations / MaxConcurrency."""
    return in_flight / max_concurrency if max_concurrency > 0 else 0.0


def provisioned_utilization(in_flight: int, provisioned: int) -> float:
    """ServerlessProvisionedConcurrencyUtilization: the invocations the warm instances
    serve / ProvisionedConcurrency (at most 1: more run on on-demand instances)."""
    return min(in_flight, provisioned) / provisioned if provisioned > 0 else 0.0
