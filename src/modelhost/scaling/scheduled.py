"""Running a scalable target's scheduled actions, each period and after a restart.

Each period the autoscaler runs the actions that fired since its last pass, in the order
they fired. The target remembers how far its actions were run (`ScheduledThrough`), so
the first pass after the gateway starts again sees what fired while it was down and runs
the latest such action of the target once (its MinCapacity/MaxCapacity are what would
hold now); earlier missed ones are superseded. AWS's documentation does not describe
missed actions (the service does not go down); this is modelhost's choice, stated in
docs/autoscaling.md. While ScheduledScalingSuspended is set nothing runs, and resuming
does not replay what fired meanwhile.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from modelhost.scaling import schedule
from modelhost.scaling.activities import Activities
from modelhost.scaling.book import ScalingBook
from modelhost.store.metadata import Kind, Record

THROUGH = "ScheduledThrough"


class ScheduledActions:
    """Runs the scheduled actions of one target per call; see the module docstring."""

    def __init__(self, book: ScalingBook, activities: Activities) -> None:
        self.book = book
        self.activities = activities

    def run(self, target: Record, since: float | None, now: float, suspended: bool) -> bool:
        """Run the actions due in (since, now]; `since` None: the first pass since the
        gateway started (catch up from `ScheduledThrough`). Whether the bounds changed."""
        actions = self.book.children(
            Kind.SCHEDULED_ACTION, target.spec["ResourceId"], target.spec["ScalableDimension"]
        )
        if not actions:
            return False
        due: list[tuple[float, float, dict[str, Any]]] = []
        if not suspended:
            for rec in actions:
                after = since
                if after is None:
                    after = float(target.spec.get(THROUGH, rec.modified_s))
                fired = _fired(rec, after, now)
                if fired is not None:
                    due.append((fired, rec.created_s, rec.spec))
        due.sort(key=lambda d: (d[0], d[1]))
        catch_up = since is None
        if catch_up:
            due = due[-1:]
        for fired, _created, action in due:
            self._apply(target, action, fired if catch_up else None)
        target.spec[THROUGH] = now
        self.book.save(target)
        return bool(due)

    def _apply(self, target: Record, action: dict[str, Any], missed_at: float | None) -> None:
        wanted = action.get("ScalableTargetAction") or {}
        low = wanted.get("MinCapacity", target.spec["MinCapacity"])
        high = wanted.get("MaxCapacity", target.spec["MaxCapacity"])
        target.spec.update(MinCapacity=low, MaxCapacity=high)
        name = action["ScheduledActionName"]
        cause = f"scheduled action name {name} was triggered"
        if missed_at is not None:
            when = dt.datetime.fromtimestamp(missed_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            cause += f" (due at {when} while the gateway was down)"
        self.activities.done(
            target.spec,
            f"Setting min capacity to {low} and max capacity to {high}",
            cause,
            f"Successfully set min capacity to {low} and max capacity to {high}",
        )


def _fired(rec: Record, after: float, now: float) -> float | None:
    """When the action last fired in (after, now] within its StartTime..EndTime."""
    action = rec.spec
    start, end = action.get("StartTime"), action.get("EndTime")
    parsed = schedule.parse(action["Schedule"], action.get("Timezone"))
    origin = float(start) if start is not None else rec.created_s
    fired = schedule.last_fire(parsed, after, now, origin)
    if fired is None:
        return None
    if (start is not None and fired < float(start)) or (end is not None and fired > float(end)):
        return None
    return fired
