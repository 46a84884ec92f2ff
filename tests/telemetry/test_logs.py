"""Instance logs as CloudWatch Logs, without processes: names, filter patterns, the
indexer's timestamps and resume points, GetLogEvents/FilterLogEvents pages and retention."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import InvalidParameterException
from modelhost.telemetry.log_filter import FilterPatternError, parse_filter_pattern
from modelhost.telemetry.log_indexer import LogIndexer, leading_time_ms, split_lines, stamp
from modelhost.telemetry.log_pages import event_page, filter_page
from modelhost.telemetry.log_store import LogStore, Stream
from modelhost.telemetry.logs import (
    TRANSFORM_GROUP,
    group_endpoint,
    group_from_arn,
    instance_log_stream_arn,
    log_stream_arn_for_file,
    stream_for_path,
)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def store(tmp_path: Path, clock: Clock) -> Iterator[LogStore]:
    s = LogStore(tmp_path / "logs.db", retention_s=3600, max_bytes=10_000_000, clock=clock)
    yield s
    s.close()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(text)
    # Old enough that an unterminated last line counts (the writer went quiet).
    os.utime(path, (1_000_000_000, 1_000_000_000))


def test_names_follow_sagemaker(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    assert stream_for_path(logs, logs / "churn" / "AllTraffic" / "i-abc.log") == (
        "/aws/sagemaker/Endpoints/churn",
        "AllTraffic/i-abc",
    )
    assert stream_for_path(logs, logs / "mc" / "v1" / "pre" / "i-1.log") == (
        "/aws/sagemaker/Endpoints/mc",
        "v1/i-1/pre",
    )
    assert stream_for_path(logs, logs / "transform-job1" / "instances" / "i-2.log") == (
        TRANSFORM_GROUP,
        "job1/i-2",
    )
    assert stream_for_path(logs, logs / "x.log") is None
    assert stream_for_path(logs, logs / "a" / "b" / "notes.txt") is None
    assert stream_for_path(logs, tmp_path / "elsewhere" / "a" / "i.log") is None
    arn = instance_log_stream_arn("us-east-1", "123456789012", "churn", "AllTraffic", "i-abc")
    assert arn == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/churn"
        ":log-stream:AllTraffic/i-abc"
    )
    member = logs / "churn" / "v1" / "pre" / "i-9.log"
    assert log_stream_arn_for_file("r", "1", logs, member) == (
        "arn:aws:logs:r:1:log-group:/aws/sagemaker/Endpoints/churn:log-stream:v1/i-9/pre"
    )
    assert log_stream_arn_for_file("r", "1", logs, member) == instance_log_stream_arn(
        "r", "1", "churn", "v1", "i-9", "pre"
    )
    assert log_stream_arn_for_file("r", "1", logs, tmp_path / "x.log") is None
    assert group_from_arn("arn:aws:logs:r:1:log-group:/aws/x:*") == "/aws/x"
    assert group_from_arn("/aws/x") == "/aws/x"
    assert group_endpoint("/aws/sagemaker/Endpoints/churn") == "churn"
    assert group_endpoint(TRANSFORM_GROUP) is None


def test_filter_patterns() -> None:
    p = parse_filter_pattern('ERROR "model loaded" -timeout')
    assert p.matches("ERROR: model loaded late")
    assert not p.matches("ERROR: model loaded, timeout")
    assert not p.matches("error: model loaded")  # case-sensitive, as CloudWatch
    assert not p.matches("ERROR: Model loaded")
    either = parse_filter_pattern("?WARN ?ERROR")
    assert either.matches("a WARN b") and either.matches("ERROR") and not either.matches("INFO")
    assert parse_filter_pattern("").is_empty() and parse_filter_pattern(None).matches("x")
    assert parse_filter_pattern(r'"say \"hi\""').required == ('say "hi"',)
    for bad in ('{ $.level = "x" }', "[ip, user]", '"open'):
        with pytest.raises(FilterPatternError):
            parse_filter_pattern(bad)


def test_leading_times_and_stamping() -> None:
    utc = leading_time_ms(b"2026-12-06T09:40:01.250Z started")
    assert utc == int(datetime.fromisoformat("2026-12-06T09:40:01.250+00:00").timestamp() * 1000)
    local = leading_time_ms(b"2026-12-06 09:40:01,250 INFO x")
    assert local == int(datetime(2026, 12, 6, 9, 40, 1, 250_000).timestamp() * 1000)
    assert leading_time_ms(b"[2026-12-06 09:40:01+02:00] x") == utc - 2 * 3600 * 1000 - 250
    assert leading_time_ms(b"hello 2026-12-06 09:40:01") is None
    assert leading_time_ms(b"2026-13-06 09:40:01 bad month") is None
    now = utc + 60_000
    events = stamp(
        [b"2026-12-06T09:40:01.250Z a\n", b"no time\n", b"\n", b"2026-12-06T09:39:00Z b\r\n"],
        last_ms=None,
        ingest_ms=now,
        oldest_ms=0,
    )
    # Own time, then ingestion time, the blank line dropped, and never backwards.
    assert [(e.timestamp_ms, e.message) for e in events] == [
        (utc, "2026-12-06T09:40:01.250Z a"),
        (now, "no time"),
        (now, "2026-12-06T09:39:00Z b"),
    ]
    future = stamp([b"2030-01-01T00:00:00Z x"], last_ms=None, ingest_ms=now, oldest_ms=0)
    assert future[0].timestamp_ms == now
    assert split_lines(b"a\nb\npart", at_eof_and_idle=False) == ([b"a", b"b"], 4)
    assert split_lines(b"a\npart", at_eof_and_idle=True) == ([b"a", b"part"], 6)


def test_indexer_resumes_where_it_stopped(tmp_path: Path, clock: Clock) -> None:
    logs = tmp_path / "logs"
    path = logs / "ep" / "AllTraffic" / "i-1.log"
    _write(path, "one\ntwo\npart")
    store = LogStore(tmp_path / "logs.db", retention_s=3600, max_bytes=1 << 20, clock=clock)
    indexer = LogIndexer(store, logs, clock=clock)
    assert indexer.sync() == 3  # the idle unterminated line counts
    assert indexer.sync() == 0
    _write(path, "\nthree\n")
    assert indexer.sync() == 1
    store.close()
    # A restart resumes from the stored position: nothing is read twice.
    store = LogStore(tmp_path / "logs.db", retention_s=3600, max_bytes=1 << 20, clock=clock)
    indexer = LogIndexer(store, logs, clock=clock)
    _write(path, "four\n")
    assert indexer.sync() == 1
    stream = store.stream("/aws/sagemaker/Endpoints/ep", "AllTraffic/i-1")
    assert stream is not None
    page = event_page(
        store, stream, token=None, start_from_head=True, start_ms=None, end_ms=None, limit=100
    )
    assert [e["message"] for e in page["events"]] == ["one", "two", "part", "three", "four"]
    store.close()


def _stream_with(store: LogStore, clock: Clock, name: str, messages: list[str]) -> Stream:
    from modelhost.telemetry.log_store import NewEvent

    stream = store.stream("g", name) or store.ensure_stream("g", name, None)
    base = int(clock() * 1000)
    events = [NewEvent(base + i, m) for i, m in enumerate(messages)]
    store.append(stream, events, "f", 0)
    clock.t += len(messages) / 1000
    return stream


def test_get_log_events_pages_and_tokens(store: LogStore, clock: Clock) -> None:
    stream = _stream_with(store, clock, "s", [f"m{i}" for i in range(7)])

    def page(token: str | None = None, head: bool = True, **kw: int) -> dict:  # type: ignore[type-arg]
        args = {"start_ms": None, "end_ms": None, "limit": 3, **kw}
        return event_page(store, stream, token=token, start_from_head=head, **args)

    # The SDK's loop: startFromHead, follow nextForwardToken until a page is empty.
    seen, token = [], None
    while True:
        p = page(token)
        if not p["events"]:
            assert p["nextForwardToken"] == token  # the token repeats at the end
            break
        seen += [e["message"] for e in p["events"]]
        token = p["nextForwardToken"]
    assert seen == [f"m{i}" for i in range(7)]
    # New events appear behind the repeated token.
    _stream_with(store, clock, "s", ["m7"])
    assert [e["message"] for e in page(token)["events"]] == ["m7"]
    # Without startFromHead: the newest events; backward tokens walk to the start.
    last = page(head=False)
    assert [e["message"] for e in last["events"]] == ["m5", "m6", "m7"]
    back = page(last["nextBackwardToken"])
    assert [e["message"] for e in back["events"]] == ["m2", "m3", "m4"]
    back = page(page(back["nextBackwardToken"])["nextBackwardToken"])
    assert back["events"] == []
    # Time window: startTime inclusive, endTime exclusive.
    first = page()["events"][0]["timestamp"]
    window = page(start_ms=first + 2, end_ms=first + 4, limit=10)
    assert [e["message"] for e in window["events"]] == ["m2", "m3"]
    for bad in ("x", "f/abc", "q/1"):
        with pytest.raises(InvalidParameterException):
            page(bad)


def test_filter_log_events_across_streams(store: LogStore, clock: Clock) -> None:
    a = _stream_with(store, clock, "v/a", ["hello ERROR 1", "fine", "ERROR 2"])
    b = _stream_with(store, clock, "v/b", ["ERROR 3", "ERROR 4 timeout"])
    pattern = parse_filter_pattern("ERROR -timeout")
    got, token = [], None
    while True:
        p = filter_page(store, [a, b], pattern, token=token, start_ms=None, end_ms=None, limit=2)
        got += [(e["logStreamName"], e["message"]) for e in p["events"]]
        token = p.get("nextToken")
        if token is None:
            break
    assert got == [("v/a", "hello ERROR 1"), ("v/a", "ERROR 2"), ("v/b", "ERROR 3")]
    everything = filter_page(
        store, [b], parse_filter_pattern(""), token=None, start_ms=None, end_ms=None, limit=10
    )
    assert [e["message"] for e in everything["events"]] == ["ERROR 3", "ERROR 4 timeout"]
    assert "nextToken" not in everything


def test_retention_by_age_and_size(tmp_path: Path, clock: Clock) -> None:
    store = LogStore(tmp_path / "logs.db", retention_s=60, max_bytes=1000, clock=clock)
    old = _stream_with(store, clock, "old", ["x" * 100] * 3)
    clock.t += 120
    new = _stream_with(store, clock, "new", ["y" * 100] * 5)
    assert store.enforce_retention() == 3  # older than 60 s
    assert store.stream("g", "old") is None  # empty and fileless: gone
    assert old.id != new.id
    _stream_with(store, clock, "new", ["z" * 100] * 8)  # 1300 bytes > 1000
    store.enforce_retention()
    kept = store.stream("g", "new")
    assert kept is not None and kept.stored_bytes <= 900
    page = event_page(
        store, kept, token=None, start_from_head=True, start_ms=None, end_ms=None, limit=100
    )
    assert page["events"][-1]["message"] == "z" * 100  # the oldest went first
    assert page["events"][0]["timestamp"] == kept.first_event_ms
    store.close()


def test_cli_spans_and_lines() -> None:
    from modelhost.cli.logs import format_event, since_ms

    assert since_ms("10m", 1000.0) == 400_000
    assert since_ms("1.5h", 10_000.0) == 4_600_000
    assert since_ms("2026-12-06T09:00:00+00:00", 0) == 1_796_547_600_000
    with pytest.raises(Exception, match="use a span"):
        since_ms("yesterday", 0)
    event = {"timestamp": 1_796_547_600_250, "logStreamName": "AllTraffic/i-1", "message": "hi"}
    line = format_event(event, show_stream=True)
    assert line.endswith(".250 AllTraffic/i-1 hi")
    assert format_event(event, show_stream=False).endswith(".250 hi")


def test_logs_actions_are_for_deployers_scoped_by_endpoint() -> None:
    from modelhost.gateway.auth.actions import classify, control_resource
    from modelhost.gateway.auth.policy import Role, authorize

    target = classify("POST", "/", "Logs_20140328.GetLogEvents", True)
    assert (target.service, target.action) == ("logs", "logs:GetLogEvents")
    group = {"logGroupName": "/aws/sagemaker/Endpoints/churn-1", "logStreamName": "x"}
    assert control_resource(group) == "endpoint/churn-1"
    arn = "arn:aws:logs:us-east-1:1:log-group:/aws/sagemaker/Endpoints/churn-2:*"
    assert control_resource({"logGroupIdentifier": arn}) == "endpoint/churn-2"
    assert control_resource({"logGroupName": TRANSFORM_GROUP}) == ""
    for op in ("DescribeLogGroups", "DescribeLogStreams", "GetLogEvents", "FilterLogEvents"):
        assert authorize(Role.DEPLOYER, f"logs:{op}", "endpoint/churn-1", "churn-*")
        assert not authorize(Role.DEPLOYER, f"logs:{op}", "endpoint/fraud", "churn-*")
        assert not authorize(Role.INVOKER, f"logs:{op}", "endpoint/churn-1", "*")


def test_every_logs_operation_has_a_policy_entry(tmp_path: Path) -> None:
    from modelhost.gateway.auth.actions import classify
    from modelhost.gateway.auth.policy import ACTIONS
    from modelhost.gateway.logs_api import TARGET_PREFIX, LogsAPI
    from modelhost.settings import Settings

    api = LogsAPI(Settings(home=tmp_path))
    assert sorted(api.operations) == [
        "DescribeLogGroups",
        "DescribeLogStreams",
        "FilterLogEvents",
        "GetLogEvents",
    ]
    for op in api.operations:
        assert classify("POST", "/", TARGET_PREFIX + op, True).action in ACTIONS, op


def test_background_poll_skips_cold_files_until_a_full_scan(tmp_path: Path, clock: Clock) -> None:
    from modelhost.telemetry.log_indexer import FULL_SCAN_INTERVAL_S, HOT_FILE_S

    logs = tmp_path / "logs"
    hot, cold = logs / "ep" / "v" / "i-hot.log", logs / "ep" / "v" / "i-cold.log"
    _write(hot, "a\n")
    _write(cold, "a\n")
    store = LogStore(tmp_path / "logs.db", retention_s=3600, max_bytes=1 << 20, clock=clock)
    indexer = LogIndexer(store, logs, clock=clock)
    assert indexer.sync() == 2
    clock.t += HOT_FILE_S + 1
    _write(hot, "b\n")
    assert indexer.sync(full=False) == 1  # a full scan is due: finds the cold file's change
    clock.t += 1
    _write(hot, "c\n")
    _write(cold, "b\n")
    assert indexer.sync(full=False) == 1  # only the file that changed lately
    clock.t += FULL_SCAN_INTERVAL_S
    assert indexer.sync(full=False) == 1  # the cold file, at the next full scan
    _write(cold, "c\n")
    assert indexer.sync() == 1  # API reads always scan everything
    store.close()


def test_sweep_empties_indexed_files_but_keeps_them(tmp_path: Path, clock: Clock) -> None:
    logs = tmp_path / "logs"
    idle, big, fresh = (logs / "ep" / "v" / f"i-{n}.log" for n in ("idle", "big", "fresh"))
    _write(idle, "old line\n")  # mtime in 2001: idle for long
    _write(big, "x" * 200 + "\n")
    _write(fresh, "new line\n")
    os.utime(big, (clock.t, clock.t))
    os.utime(fresh, (clock.t, clock.t))
    store = LogStore(tmp_path / "logs.db", retention_s=3600, max_bytes=1 << 20, clock=clock)
    indexer = LogIndexer(store, logs, clock=clock, max_file_bytes=100)
    assert indexer.sync() == 3
    _write(idle, "")  # nothing new, but keep it idle
    indexer.sweep()
    assert idle.stat().st_size == 0 and big.stat().st_size == 0  # emptied, still there
    assert fresh.read_text() == "new line\n"
    # The writer appends on: the next line is indexed once, from the new start.
    _write(idle, "after\n")
    assert indexer.sync() == 1
    stream = store.stream("/aws/sagemaker/Endpoints/ep", "v/i-idle")
    assert stream is not None
    page = event_page(
        store, stream, token=None, start_from_head=True, start_ms=None, end_ms=None, limit=10
    )
    assert [e["message"] for e in page["events"]] == ["old line", "after"]
    # A file that is gone: its stream and events stay readable.
    fresh.unlink()
    indexer.sweep()
    assert store.stream("/aws/sagemaker/Endpoints/ep", "v/i-fresh") is not None
    store.close()


def test_describe_pages_through_the_api_layer(tmp_path: Path) -> None:
    from modelhost.gateway.logs_api import LogsAPI
    from modelhost.settings import Settings
    from modelhost.telemetry.log_store import NewEvent

    api = LogsAPI(Settings(home=tmp_path))
    store = api.open_store().store
    for group in ("/aws/sagemaker/Endpoints/a", "/aws/sagemaker/Endpoints/b", "/other"):
        for i in range(5):
            stream = store.ensure_stream(group, f"v/i-{i}", None)
            store.append(stream, [NewEvent(1000 * (5 - i), "x")], "f", 0)
    try:

        def all_pages(call: Any, **kw: Any) -> list[Any]:
            out, token = [], None
            while True:
                page = call({**kw, **({"nextToken": token} if token else {})})
                out += page.get("logGroups", page.get("logStreams", []))
                token = page.get("nextToken")
                if not token:
                    return out

        groups = all_pages(api.describe_log_groups, logGroupNamePrefix="/aws/sagemaker/", limit=1)
        assert [g["logGroupName"] for g in groups] == [
            "/aws/sagemaker/Endpoints/a",
            "/aws/sagemaker/Endpoints/b",
        ]
        assert groups[0]["retentionInDays"] == 14
        assert groups[0]["arn"] == groups[0]["logGroupArn"] + ":*"
        assert (
            api.describe_log_groups({"logGroupNamePattern": "OTHER"})["logGroups"][0][
                "logGroupName"
            ]
            == "/other"
        )
        names = all_pages(api.describe_log_streams, logGroupName="/other", limit=2)
        assert [s["logStreamName"] for s in names] == [f"v/i-{i}" for i in range(5)]
        latest = all_pages(
            api.describe_log_streams,
            logGroupName="/other",
            orderBy="LastEventTime",
            descending=True,
            limit=2,
        )
        assert [s["logStreamName"] for s in latest] == [f"v/i-{i}" for i in range(5)]
        one = api.describe_log_streams({"logGroupName": "/other", "limit": 5})
        assert "nextToken" not in one  # exactly one page: no token (the SDK loops on it)
        token = api.describe_log_streams({"logGroupName": "/other", "limit": 1})["nextToken"]
        for bad in (token, "x", "e30"):
            with pytest.raises(InvalidParameterException):
                api.describe_log_streams(
                    {"logGroupName": "/other", "orderBy": "LastEventTime", "nextToken": bad}
                )
    finally:
        api.close()
