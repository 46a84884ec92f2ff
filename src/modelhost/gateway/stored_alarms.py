"""The alarm book's durable side and its evaluation loop.

Alarms are records in the metadata store. With one gateway the book is the truth and is
evaluated every second. With several on one PostgreSQL, an alarm may be put or deleted
through any of them, and only the leader evaluates (over the merged metric rollups, see
telemetry/shared_rollups.py), so a state is decided once: every round each gateway syncs
its book from the store first; the leader keeps its own states, the others take the
leader's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from modelhost.store.metadata import Kind, MetadataStore, Record
from modelhost.telemetry.alarms import AlarmBook

log = logging.getLogger("modelhost.gateway")

ALARM_EVALUATION_INTERVAL_S = 1.0


class StoredAlarms:
    """Persists the book's alarms (`persist`) and runs its evaluation (`run`)."""

    def __init__(self, store: MetadataStore, shared: bool) -> None:
        self.store = store
        self.shared = shared  # several gateways may share the store

    def persist(self, name: str, document: dict[str, Any] | None) -> None:
        if document is None:
            self.store.delete(Kind.ALARM, name)
            return
        now = time.time()
        record = self.store.get(Kind.ALARM, name)
        if record is None:
            self.store.create(
                Record(Kind.ALARM, name, f"alarm:{name}", document, [], None, None, now, now)
            )
        else:
            record.spec, record.modified_s = document, now
            self.store.save(record)

    def documents(self) -> list[dict[str, Any]]:
        return [r.spec for r in self.store.list(Kind.ALARM)]

    async def round(self, book: AlarmBook, leading: bool) -> None:
        """One round; the book is changed on the event loop only (the API reads it there)."""
        if self.shared:
            read_at = book.clock()
            documents = await asyncio.to_thread(self.documents)
            book.sync(documents, take_state=not leading, read_at=read_at)
        if leading:
            book.evaluate_all()

    async def run(self, book: AlarmBook, leading: Callable[[], bool]) -> None:
        while True:
            await asyncio.sleep(ALARM_EVALUATION_INTERVAL_S)
            try:
                await self.round(book, leading())
            except Exception:
                log.exception("alarm evaluation failed")
