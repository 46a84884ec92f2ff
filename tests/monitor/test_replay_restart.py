"""A gateway killed (SIGKILL) in the middle of a replay: on restart the temporary endpoint
and its config are removed; only what a replay of this gateway made is touched."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.monitor.replay_run import OWNER_TAG, left_behind
from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.monitor.support import capture_line
from tests.support import FAST_ENV, XGBOOST_IMAGE, ChurnModel, unique


def test_left_behind_are_the_owners_temporary_resources_only() -> None:
    mine = [{"Key": OWNER_TAG, "Value": "http://127.0.0.1:8080"}]
    other = [{"Key": OWNER_TAG, "Value": "http://127.0.0.1:8081"}]
    resources = [
        ("replay-0123456789ab", mine),
        ("replay-ba9876543210", other),
        ("replay-users-own", []),  # a user's endpoint named like a replay's
        ("churn", mine),
    ]
    assert left_behind(resources, "http://127.0.0.1:8080") == ["replay-0123456789ab"]


def _replays(sm: Any) -> list[str]:
    listed = sm.list_endpoints(NameContains="replay-", MaxResults=100)["Endpoints"]
    return [e["EndpointName"] for e in listed if e["EndpointName"].startswith("replay-")]


@pytest.mark.integration
def test_restart_removes_the_temporary_endpoint_of_a_killed_replay(
    tmp_path: Path, churn_model: ChurnModel
) -> None:
    capture = tmp_path / "capture" / "prod" / "AllTraffic" / "2026" / "12" / "06" / "12"
    capture.mkdir(parents=True)
    rows = csv_rows(churn_model.data.X[:20])
    (capture / "00-00-000-x.jsonl").write_text("\n".join(capture_line(r) for r in rows) + "\n")
    server = ModelhostServer(tmp_path / "home", env=FAST_ENV).start()
    try:
        sm, _ = server.clients()
        model = unique("cand")
        sm.create_model(
            ModelName=model,
            PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)},
        )
        body = {"CaptureUri": str(tmp_path / "capture"), "ModelName": model}

        def replay() -> None:
            # The gateway dies under this call: its connection breaks.
            with contextlib.suppress(urllib.error.URLError, OSError):
                server.call("POST", "/api/replay", body)

        caller = threading.Thread(target=replay, daemon=True)
        caller.start()
        deadline = time.monotonic() + 60
        while not (found := _replays(sm)):
            assert time.monotonic() < deadline, "the replay made no temporary endpoint"
            time.sleep(0.1)
        temporary = found[0]
        assert server.proc is not None
        server.proc.kill()  # SIGKILL: nothing of the replay's clean-up runs
        server.proc.wait()
        server.proc = None
        caller.join(60)

        server.start()
        # Removed by the restarted gateway (not by the replay, which never finished).
        assert temporary in server.log_tail(400)
        sm, _ = server.clients()
        deadline = time.monotonic() + 60
        while _replays(sm):
            assert time.monotonic() < deadline, _replays(sm)
            time.sleep(0.2)
        with pytest.raises(ClientError):
            sm.describe_endpoint_config(EndpointConfigName=temporary)
        sm.describe_model(ModelName=model)  # the candidate itself is the user's: kept
    finally:
        server.stop()
