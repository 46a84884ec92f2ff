"""CloudWatch Logs API for boto3's `logs` client: JSON 1.1 with `X-Amz-Target:
Logs_20140328.<Operation>` (the only protocol botocore's `logs` model lists).

Serves the instances' logs that `telemetry.log_indexer` keeps in `telemetry.log_store`:
DescribeLogGroups, DescribeLogStreams, GetLogEvents and FilterLogEvents, with the
service's error codes. Every read indexes what the log files gained first, so a line an
instance just printed is found at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from modelhost.errors import InvalidParameterException, LogResourceNotFound, UnknownOperation
from modelhost.gateway import json11
from modelhost.gateway.asgi import Receive, Scope, Send
from modelhost.settings import Settings
from modelhost.telemetry.log_filter import FilterPatternError, parse_filter_pattern
from modelhost.telemetry.log_indexer import LogIndexer
from modelhost.telemetry.log_pages import (
    bad_token,
    decode_token,
    encode_token,
    event_page,
    filter_page,
)
from modelhost.telemetry.log_store import LogStore, Stream
from modelhost.telemetry.logs import group_from_arn, log_group_arn, log_stream_arn

TARGET_PREFIX = "Logs_20140328."
_MAX_BODY = 1024 * 1024
DAY_S = 86_400


class LogsAPI:
    """Dispatches `Logs_20140328.*` calls; `run()` keeps the index current in the
    background. The store opens on first use, so a gateway built without its lifespan
    (tests) opens no database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: LogStore | None = None
        self.indexer: LogIndexer | None = None
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "DescribeLogGroups": self.describe_log_groups,
            "DescribeLogStreams": self.describe_log_streams,
            "GetLogEvents": self.get_log_events,
            "FilterLogEvents": self.filter_log_events,
        }

    def open_store(self) -> LogIndexer:
        """Open `logs.db` (once) and return the indexer that fills it."""
        if self.indexer is None:
            s = self.settings
            self.store = LogStore(
                s.home / "logs.db", retention_s=s.logs_retention_s, max_bytes=s.logs_max_bytes
            )
            self.indexer = LogIndexer(self.store, s.logs_dir)
        return self.indexer

    async def run(self) -> None:
        """Keep the index current (the gateway's lifespan runs this as a task)."""
        await self.open_store().run(self.settings.logs_poll_interval_s)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await json11.serve(scope, receive, send, _MAX_BODY, self._dispatch)

    async def _dispatch(self, target: str, body: bytes) -> dict[str, Any]:
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        handler = self.operations.get(operation)
        if handler is None:
            raise UnknownOperation(
                f"Operation '{target}' is not supported by modelhost. Supported: "
                + ", ".join(sorted(self.operations))
            )
        return await asyncio.to_thread(self._call, handler, json11.params(body))

    def _call(
        self, handler: Callable[[dict[str, Any]], dict[str, Any]], params: dict[str, Any]
    ) -> dict[str, Any]:
        self.open_store().sync()
        return handler(params)

    @property
    def _store(self) -> LogStore:
        assert self.store is not None
        return self.store

    # --- operations -------------------------------------------------------------------

    def describe_log_groups(self, p: dict[str, Any]) -> dict[str, Any]:
        prefix = _str(p, "logGroupNamePrefix") or ""
        pattern = _str(p, "logGroupNamePattern") or ""
        if prefix and pattern:
            raise InvalidParameterException(
                "logGroupNamePrefix and logGroupNamePattern are mutually exclusive."
            )
        limit = _int(p, "limit", 1, 50, 50)
        after = ""
        if p.get("nextToken"):
            key = decode_token(_str(p, "nextToken"), "g")
            if len(key) != 1 or not isinstance(key[0], str):
                raise bad_token()
            after = key[0]
        groups = self._store.groups(prefix=prefix, contains=pattern, after=after)
        wanted = _list(p, "logGroupIdentifiers")
        if wanted is not None:
            names = {group_from_arn(str(w)) for w in wanted}
            groups = [g for g in groups if g.name in names]
        out: dict[str, Any] = {"logGroups": [self._group(g) for g in groups[:limit]]}
        if len(groups) > limit:
            out["nextToken"] = encode_token("g", groups[limit - 1].name)
        return out

    def describe_log_streams(self, p: dict[str, Any]) -> dict[str, Any]:
        group = self._group_name(p)
        prefix = _str(p, "logStreamNamePrefix") or ""
        order = _str(p, "orderBy") or "LogStreamName"
        if order not in ("LogStreamName", "LastEventTime"):
            raise InvalidParameterException(
                f"orderBy must be LogStreamName or LastEventTime, not {order!r}."
            )
        if order == "LastEventTime" and prefix:
            raise InvalidParameterException(
                "Cannot order by LastEventTime with a logStreamNamePrefix."
            )
        descending = _bool(p, "descending")
        limit = _int(p, "limit", 1, 50, 50)

        def key(s: Stream) -> list[Any]:
            if order == "LogStreamName":
                return [s.name]
            return [s.last_event_ms or 0, s.name]

        streams = sorted(
            (s for s in self._store.streams(group) if s.name.startswith(prefix)),
            key=key,
            reverse=descending,
        )
        if p.get("nextToken"):
            after = list(decode_token(_str(p, "nextToken"), "s"))
            shape = [str] if order == "LogStreamName" else [int, str]
            if [type(k) for k in after] != shape:
                raise bad_token()
            streams = [s for s in streams if (key(s) < after if descending else key(s) > after)]
        out: dict[str, Any] = {"logStreams": [self._stream(group, s) for s in streams[:limit]]}
        if len(streams) > limit:
            out["nextToken"] = encode_token("s", *key(streams[limit - 1]))
        return out

    def get_log_events(self, p: dict[str, Any]) -> dict[str, Any]:
        group = self._group_name(p)
        name = _str(p, "logStreamName")
        if not name:
            raise InvalidParameterException("logStreamName is required.")
        stream = self._store.stream(group, name)
        if stream is None:
            raise LogResourceNotFound("The specified log stream does not exist.")
        return event_page(
            self._store,
            stream,
            token=_str(p, "nextToken"),
            start_from_head=_bool(p, "startFromHead"),
            start_ms=_long(p, "startTime"),
            end_ms=_long(p, "endTime"),
            limit=_int(p, "limit", 1, 10_000, 10_000),
        )

    def filter_log_events(self, p: dict[str, Any]) -> dict[str, Any]:
        group = self._group_name(p)
        names = _list(p, "logStreamNames")
        prefix = _str(p, "logStreamNamePrefix")
        if names is not None and prefix is not None:
            raise InvalidParameterException(
                "logStreamNames and logStreamNamePrefix are mutually exclusive."
            )
        try:
            pattern = parse_filter_pattern(_str(p, "filterPattern"))
        except FilterPatternError as exc:
            raise InvalidParameterException(str(exc)) from exc
        streams = [
            s
            for s in self._store.streams(group)
            if (names is None or s.name in names) and s.name.startswith(prefix or "")
        ]
        return filter_page(
            self._store,
            streams,
            pattern,
            token=_str(p, "nextToken"),
            start_ms=_long(p, "startTime"),
            end_ms=_long(p, "endTime"),
            limit=_int(p, "limit", 1, 10_000, 10_000),
        )

    # --- shapes -----------------------------------------------------------------------

    def _group_name(self, p: dict[str, Any]) -> str:
        name, identifier = _str(p, "logGroupName"), _str(p, "logGroupIdentifier")
        if name and identifier:
            raise InvalidParameterException(
                "logGroupName and logGroupIdentifier are mutually exclusive."
            )
        group = name or (group_from_arn(identifier) if identifier else "")
        if not group:
            raise InvalidParameterException(
                "Either logGroupName or logGroupIdentifier is required."
            )
        if not self._store.has_group(group):
            raise LogResourceNotFound("The specified log group does not exist.")
        return group

    def _group(self, g: Any) -> dict[str, Any]:
        s = self.settings
        arn = log_group_arn(s.region, s.account_id, g.name)
        out = {
            "logGroupName": g.name,
            "creationTime": g.created_ms,
            "metricFilterCount": 0,
            "arn": arn + ":*",
            "logGroupArn": arn,
            "storedBytes": g.stored_bytes,
            "logGroupClass": "STANDARD",
        }
        if s.logs_retention_s % DAY_S == 0:
            out["retentionInDays"] = int(s.logs_retention_s // DAY_S)
        return out

    def _stream(self, group: str, st: Stream) -> dict[str, Any]:
        s = self.settings
        out: dict[str, Any] = {
            "logStreamName": st.name,
            "creationTime": st.created_ms,
            "arn": log_stream_arn(s.region, s.account_id, group, st.name),
            "storedBytes": st.stored_bytes,
        }
        for field, value in (
            ("firstEventTimestamp", st.first_event_ms),
            ("lastEventTimestamp", st.last_event_ms),
            ("lastIngestionTime", st.last_ingestion_ms),
        ):
            if value is not None:
                out[field] = value
        return out


# --- parameters ---------------------------------------------------------------------------


def _str(p: dict[str, Any], name: str) -> str | None:
    value = p.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidParameterException(f"{name} must be a string.")
    return value


def _bool(p: dict[str, Any], name: str) -> bool:
    value = p.get(name, False)
    if not isinstance(value, bool):
        raise InvalidParameterException(f"{name} must be a boolean.")
    return value


def _long(p: dict[str, Any], name: str) -> int | None:
    value = p.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterException(f"{name} must be a non-negative integer (epoch ms).")
    return value


def _int(p: dict[str, Any], name: str, lo: int, hi: int, default: int) -> int:
    value = _long(p, name)
    if value is None:
        return default
    if not lo <= value <= hi:
        raise InvalidParameterException(f"{name} must be between {lo} and {hi}, not {value}.")
    return value


def _list(p: dict[str, Any], name: str) -> list[str] | None:
    value = p.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameterException(f"{name} must be a list of strings.")
    return value
