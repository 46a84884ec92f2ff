"""The one writer of endpoint records: statuses, reasons and events."""

from __future__ import annotations

import pytest

from modelhost.control.status import EVENT_HISTORY_MAX, MAX_REASON
from modelhost.errors import FencedOut
from modelhost.resources.status import EndpointStatus
from tests.control.harness import Harness, snapshot, variant


def test_set_status_stamps_the_clock_and_clips_the_reason(harness: Harness) -> None:
    h = harness
    h.put("ep", snapshot("cfg", variant("A", "m")), EndpointStatus.CREATING)
    h.clock.advance(42)
    h.state.status.set_status("ep", EndpointStatus.FAILED, "x" * 5000)
    rec = h.record("ep")
    assert rec is not None and rec.status == EndpointStatus.FAILED
    assert rec.modified_s == h.clock.now()
    assert len(rec.failure_reason or "") == MAX_REASON
    assert (rec.failure_reason or "").endswith("...")
    assert "Failed" in (h.controller.table.endpoints["ep"].unavailable_reason or "")


def test_a_deleting_endpoint_keeps_its_status(harness: Harness) -> None:
    h = harness
    h.put("ep", snapshot("cfg", variant("A", "m")), EndpointStatus.DELETING)
    h.state.status.set_status("ep", EndpointStatus.IN_SERVICE, None)
    assert h.state.status.abandon_update("ep", "why") is None
    rec = h.record("ep")
    assert rec is not None and rec.status == EndpointStatus.DELETING
    h.state.status.set_status("gone", EndpointStatus.IN_SERVICE, None)  # no record: no-op


def test_events_are_capped_and_set_the_pending_stage(harness: Harness) -> None:
    h = harness
    spec = snapshot("cfg", variant("A", "m"))
    spec["Pending"] = {**snapshot("cfg-2", variant("A", "m2")), "StartTime": 1.0}
    h.put("ep", spec, EndpointStatus.UPDATING)
    before = h.record("ep")
    assert before is not None
    for i in range(EVENT_HISTORY_MAX + 5):
        h.clock.advance(1)
        h.state.status.event("ep", "Baking", f"step {i}")
    rec = h.record("ep")
    assert rec is not None
    events = rec.spec["Events"]
    assert (
        len(events) == EVENT_HISTORY_MAX
        and events[-1]["Message"] == f"step {EVENT_HISTORY_MAX + 4}"
    )
    assert rec.spec["Pending"]["Stage"] == {
        "Status": "Baking",
        "StatusMessage": f"step {EVENT_HISTORY_MAX + 4}",
        "StartTime": h.clock.now(),
    }
    assert rec.modified_s == before.modified_s  # events do not touch LastModifiedTime


class _Deposed:
    """A leader fence that no longer holds (store/fencing.py's, after a failover)."""

    def check(self, conn: object) -> None:
        raise FencedOut("another gateway leads")


def test_a_fenced_out_controller_writes_nothing_but_api_calls_still_do(
    harness: Harness,
) -> None:
    h = harness
    h.put("ep", snapshot("cfg", variant("A", "m")), EndpointStatus.CREATING)
    h.state.status.fence = _Deposed()
    with pytest.raises(FencedOut):
        h.state.status.set_status("ep", EndpointStatus.FAILED, "deposed")
    with pytest.raises(FencedOut):
        h.state.status.event("ep", "Baking", "step")
    with pytest.raises(FencedOut):
        h.state.status.delete("ep")
    rec = h.record("ep")
    assert rec is not None and rec.status == EndpointStatus.CREATING
    assert "Events" not in rec.spec or not rec.spec["Events"]
    # UpdateEndpointWeightsAndCapacities through any gateway is not the leader's write.
    h.state.status.update("ep", lambda e: None, fenced=False)
    assert h.record("ep") is not None
