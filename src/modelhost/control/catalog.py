"""The stored resources as the control-plane operations see them.

One place for what every resource's operations share: its ARN, a lookup that fails with
SageMaker's message, creation that refuses a duplicate, and the Describe, Delete and List
bodies that differ between resources only in their member names (`ResourceKind`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelhost.control.listing import list_response
from modelhost.errors import ValidationException
from modelhost.resources.names import arn
from modelhost.settings import Settings
from modelhost.store.metadata import AlreadyExists, Kind, MetadataStore, Record

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ResourceKind:
    """A stored resource kind and the member names its API operations use."""

    kind: Kind
    word: str  # in messages: Could not find <word> "<arn>".
    name_key: str
    arn_key: str
    list_member: str
    # List*: fields beside name, ARN and CreationTime, and the SortBy values.
    list_fields: Callable[[Record], dict[str, Any]] = lambda _: {}
    sort_keys: dict[str, str] = field(default_factory=dict)
    status_key: str | None = None


MODEL = ResourceKind(
    Kind.MODEL,
    "model",
    "ModelName",
    "ModelArn",
    "Models",
    sort_keys={"Name": "ModelName", "CreationTime": "CreationTime"},
)
ENDPOINT_CONFIG = ResourceKind(
    Kind.ENDPOINT_CONFIG,
    "endpoint configuration",
    "EndpointConfigName",
    "EndpointConfigArn",
    "EndpointConfigs",
    sort_keys={"Name": "EndpointConfigName", "CreationTime": "CreationTime"},
)
ENDPOINT = ResourceKind(
    Kind.ENDPOINT,
    "endpoint",
    "EndpointName",
    "EndpointArn",
    "Endpoints",
    list_fields=lambda r: {"LastModifiedTime": r.modified_s, "EndpointStatus": r.status},
    sort_keys={"Name": "EndpointName", "CreationTime": "CreationTime", "Status": "EndpointStatus"},
    status_key="EndpointStatus",
)


class Catalog:
    """ARNs, lookups, creation and the generic Describe/Delete/List over the store."""

    def __init__(self, settings: Settings, store: MetadataStore) -> None:
        self.settings = settings
        self.store = store

    def arn(self, rk: ResourceKind, name: str) -> str:
        return arn(self.settings.region, self.settings.account_id, str(rk.kind), name)

    def get(self, rk: ResourceKind, name: str) -> Record:
        rec = self.store.get(rk.kind, name)
        if rec is None:
            raise ValidationException(f'Could not find {rk.word} "{self.arn(rk, name)}".')
        return rec

    def create(
        self,
        rk: ResourceKind,
        name: str,
        spec: dict[str, Any],
        tags: Any,
        status: str | None = None,
    ) -> str:
        """Store a new resource; returns its ARN. A duplicate name is a ValidationException."""
        now = time.time()
        record = Record(
            rk.kind, name, self.arn(rk, name), spec, list(tags or []), status, None, now, now
        )
        try:
            self.store.create(record)
        except AlreadyExists:
            raise ValidationException(
                f'Cannot create already existing {rk.word} "{record.arn}".'
            ) from None
        return record.arn

    def describe(self, rk: ResourceKind, name: str) -> dict[str, Any]:
        """The accepted request as stored, with the name, ARN and CreationTime."""
        rec = self.get(rk, name)
        return {
            **rec.spec,
            rk.name_key: rec.name,
            rk.arn_key: rec.arn,
            "CreationTime": rec.created_s,
        }

    def delete(self, rk: ResourceKind, name: str) -> dict[str, Any]:
        self.get(rk, name)
        self.store.delete(rk.kind, name)
        return {}

    def list(self, rk: ResourceKind, params: dict[str, Any]) -> dict[str, Any]:
        items = [
            {
                rk.name_key: r.name,
                rk.arn_key: r.arn,
                "CreationTime": r.created_s,
                **rk.list_fields(r),
            }
            for r in self.store.list(rk.kind)
        ]
        return list_response(
            items,
            params,
            member=rk.list_member,
            name_key=rk.name_key,
            sort_keys=rk.sort_keys,
            status_key=rk.status_key,
        )
