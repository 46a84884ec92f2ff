"""The DynamoDB prediction store (boto3): the seeds' "load batch predictions, read by key" pattern.

One table (created on first use, on-demand billing) with a string partition key `pk` and
sort key `sk`:
  registry  pk = "#stores",                       sk = store → run_id, rows_id, key_count,
                                                                loaded_at_s, value_format
  rows      pk = "{store}#{rows_id}#{shard:02d}", sk = key   → v (the prediction)
  loads     pk = "#loading",                      sk = "{store}#{rows_id}" → started_at_s

`rows_id` is the run id plus a token of the load that wrote the rows, so two loads (even of
one run id) never write the same rows. Rows are spread over `SHARDS` partitions per run so
reads do not pile onto one partition, and a run can still be listed (to delete it) with one
Query per shard. A load's marker under "#loading" lets a later load delete the rows of a
load that crashed (after `ABANDONED_AFTER_S`).

The switch is one conditional PutItem of the registry item; it returns the item it
replaced, whose rows are then deleted. DynamoDB has no multi-item snapshot, so a get reads
the registry, then the rows; if a key is missing it re-reads the registry and, if the run
changed meanwhile (the old run is being deleted), reads again from the new run. Rows of a
run never change, so a get answers from exactly one run and never misses a key both runs
hold.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

from modelhost.errors import PredictionStoreUnavailable
from modelhost.store.predictions.base import (
    Lookup,
    PredictionStore,
    RunInfo,
    ValueFormat,
    no_such_store,
)

SHARDS = 16
_REGISTRY = "#stores"
_LOADING = "#loading"
ABANDONED_AFTER_S = 6 * 3600.0
_WRITE_BATCH = 25  # BatchWriteItem's limit
_READ_BATCH = 100  # BatchGetItem's limit
_WRITERS = 8
_SWITCH_RETRIES = 3


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % SHARDS


class DynamoDBPredictionStore(PredictionStore):
    """Prediction stores in one DynamoDB table (or a DynamoDB-compatible server)."""

    kind = "dynamodb"

    def __init__(
        self, table: str, endpoint_url: str | None = None, region: str | None = None
    ) -> None:
        import boto3
        from botocore.config import Config

        self.table = table
        self.endpoint_url = endpoint_url
        self.client: Any = boto3.session.Session().client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )
        self._ready = False

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise PredictionStoreUnavailable(
                f"DynamoDB table '{self.table}' failed to {what}: {err.get('Code')}: "
                f"{err.get('Message')}"
            ) from exc
        except BotoCoreError as exc:
            raise PredictionStoreUnavailable(
                f"DynamoDB ({self.endpoint_url or 'AWS'}) failed to {what}: {exc}"
            ) from exc

    def ensure_table(self) -> None:
        """Create the table if it does not exist, and wait until it is ACTIVE."""
        if self._ready:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.describe_table(TableName=self.table)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise PredictionStoreUnavailable(
                    f"DynamoDB: cannot describe table '{self.table}': {exc}"
                ) from exc
            self._call(
                "create the table",
                "create_table",
                TableName=self.table,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            self.client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        self._ready = True

    # --- loading ------------------------------------------------------------------------

    def load(
        self,
        store: str,
        run_id: str,
        items: Iterable[tuple[str, str]],
        value_format: ValueFormat,
    ) -> RunInfo:
        if (current := self._loaded_already(store, run_id)) is not None:  # ensures the table
            return current
        self._drop_abandoned(store)
        rows_id = f"{run_id}.{uuid.uuid4().hex[:12]}"
        marker = {"pk": {"S": _LOADING}, "sk": {"S": f"{store}#{rows_id}"}}
        self._call(
            "mark a load",
            "put_item",
            TableName=self.table,
            Item={**marker, "started_at_s": {"N": repr(time.time())}},
        )
        seen: set[str] = set()
        requests = _put_requests(items, f"{store}#{rows_id}", seen)
        try:
            self._write_all(requests)
            now = time.time()
            run = RunInfo(store, run_id, len(seen), now, value_format)
            previous = self._switch(run, rows_id)
        except BaseException:
            # A failed load leaves nothing behind (the current run was never touched).
            self._drop_run(store, rows_id)
            self._call("unmark a load", "delete_item", TableName=self.table, Key=marker)
            raise
        self._call("unmark a load", "delete_item", TableName=self.table, Key=marker)
        if previous is None:  # another load of this run id switched first
            self._drop_run(store, rows_id)
            won = self.describe(store)
            assert won is not None
            return RunInfo(**{**won.__dict__, "loaded": False})
        # The rows this put replaced (not those read before loading: another load may
        # have switched runs meanwhile).
        old = previous.get("rows_id", previous.get("run_id", {})).get("S")
        if old is not None:
            self._drop_run(store, old)
        return run

    def _switch(self, run: RunInfo, rows_id: str) -> dict[str, Any] | None:
        """Make `run` current; the registry item it replaced ({} if none), or None if `run`'s
        id was already current (a concurrent load of the same run id won)."""
        from botocore.exceptions import ClientError

        try:
            answer = self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": _REGISTRY},
                    "sk": {"S": run.store},
                    "run_id": {"S": run.run_id},
                    "rows_id": {"S": rows_id},
                    "key_count": {"N": str(run.key_count)},
                    "loaded_at_s": {"N": repr(run.loaded_at_s)},
                    "value_format": {"S": run.value_format.value},
                },
                ConditionExpression="attribute_not_exists(run_id) OR run_id <> :run",
                ExpressionAttributeValues={":run": {"S": run.run_id}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise PredictionStoreUnavailable(
                f"DynamoDB table '{self.table}' failed to switch runs: {exc}"
            ) from exc
        attributes: dict[str, Any] = answer.get("Attributes", {})
        return attributes

    def _drop_abandoned(self, store: str) -> None:
        """Delete the rows of this store's loads that started long ago and never finished."""
        cutoff = time.time() - ABANDONED_AFTER_S
        for item in self._query(_LOADING):
            owner, _, rows_id = item["sk"]["S"].partition("#")
            if owner == store and float(item["started_at_s"]["N"]) < cutoff:
                self._drop_run(store, rows_id)
                self._call(
                    "unmark a load",
                    "delete_item",
                    TableName=self.table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                )

    def _write_all(self, batches: Iterable[tuple[list[dict[str, Any]], bool]]) -> None:
        """Write (batch, barrier) pairs, `_WRITERS` at a time; a barrier batch waits for all
        earlier ones."""
        with ThreadPoolExecutor(_WRITERS) as pool:
            pending: list[Any] = []
            for batch, barrier in batches:
                if barrier:
                    for future in pending:
                        future.result()
                    pending.clear()
                pending.append(pool.submit(self._write_batch, batch))
                if len(pending) >= _WRITERS * 4:
                    pending.pop(0).result()
            for future in pending:
                future.result()

    def _write_batch(self, requests: list[dict[str, Any]]) -> None:
        delay_s = 0.05
        while requests:
            answer = self._call(
                "write rows", "batch_write_item", RequestItems={self.table: requests}
            )
            requests = answer.get("UnprocessedItems", {}).get(self.table, [])
            if requests:
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)

    def _drop_run(self, store: str, rows_id: str) -> None:
        def deletes() -> Iterator[tuple[list[dict[str, Any]], bool]]:
            for shard in range(SHARDS):
                keys = self._query(f"{store}#{rows_id}#{shard:02d}", ProjectionExpression="pk, sk")
                while chunk := list(islice(keys, _WRITE_BATCH)):
                    yield [{"DeleteRequest": {"Key": key}} for key in chunk], False

        self._write_all(deletes())

    def _query(self, pk: str, **extra: Any) -> Iterator[dict[str, Any]]:
        """Every item under partition key `pk`, page by page (consistent reads)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
            **extra,
        }
        while True:
            page = self._call("query", "query", **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- reading ------------------------------------------------------------------------

    def get_many(self, store: str, keys: Sequence[str]) -> Lookup:
        self.ensure_table()
        unique = list(dict.fromkeys(keys))
        current = self._current(store)
        for _ in range(_SWITCH_RETRIES):
            if current is None:
                raise no_such_store(store)
            run, rows_id = current
            values = self._read(store, rows_id, unique)
            if len(values) == len(unique):
                return Lookup(run, values)
            # A miss may be the old run being deleted under us: if the store switched
            # runs meanwhile, read everything again from the new one.
            current = self._current(store)
            if current is not None and current[1] == rows_id:
                return Lookup(run, values)  # real misses
        if current is None:
            raise no_such_store(store)
        return Lookup(current[0], self._read(store, current[1], unique))

    def _read(self, store: str, rows_id: str, keys: list[str]) -> dict[str, str]:
        if len(keys) == 1:
            key = keys[0]
            answer = self._call(
                "read a key",
                "get_item",
                TableName=self.table,
                Key={"pk": {"S": f"{store}#{rows_id}#{shard_of(key):02d}"}, "sk": {"S": key}},
            )
            item = answer.get("Item")
            return {key: item["v"]["S"]} if item else {}
        values: dict[str, str] = {}
        for start in range(0, len(keys), _READ_BATCH):
            wanted: list[dict[str, Any]] = [
                {"pk": {"S": f"{store}#{rows_id}#{shard_of(k):02d}"}, "sk": {"S": k}}
                for k in keys[start : start + _READ_BATCH]
            ]
            delay_s = 0.05
            while wanted:
                answer = self._call(
                    "read keys",
                    "batch_get_item",
                    RequestItems={self.table: {"Keys": wanted, "ProjectionExpression": "sk, v"}},
                )
                for item in answer.get("Responses", {}).get(self.table, []):
                    values[item["sk"]["S"]] = item["v"]["S"]
                wanted = answer.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if wanted:
                    time.sleep(delay_s)
                    delay_s = min(delay_s * 2, 2.0)
        return values

    def describe(self, store: str) -> RunInfo | None:
        current = self._current(store)
        return current[0] if current is not None else None

    def _current(self, store: str) -> tuple[RunInfo, str] | None:
        """The store's current run and the id its rows are stored under."""
        self.ensure_table()
        answer = self._call(
            "describe a store",
            "get_item",
            TableName=self.table,
            Key={"pk": {"S": _REGISTRY}, "sk": {"S": store}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        if not item:
            return None
        return _run(item), item.get("rows_id", item["run_id"])["S"]

    def list_stores(self) -> list[RunInfo]:
        self.ensure_table()
        return [_run(item) for item in self._query(_REGISTRY)]

    def delete(self, store: str) -> bool:
        current = self._current(store)
        if current is None:
            return False
        self._call(
            "delete a store",
            "delete_item",
            TableName=self.table,
            Key={"pk": {"S": _REGISTRY}, "sk": {"S": store}},
        )
        self._drop_run(store, current[1])
        return True


def _run(item: dict[str, Any]) -> RunInfo:
    return RunInfo(
        item["sk"]["S"],
        item["run_id"]["S"],
        int(item["key_count"]["N"]),
        float(item["loaded_at_s"]["N"]),
        ValueFormat(item["value_format"]["S"]),
    )


def _put_requests(
    items: Iterable[tuple[str, str]], prefix: str, seen: set[str]
) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    """BatchWriteItem request lists with their barrier flag; `seen` collects the keys.

    Duplicates within one batch would be refused by DynamoDB: the last one wins. A key seen
    in an earlier batch makes a barrier, so that batch is written after every earlier one
    (batches are written in parallel) and the last value wins.
    """
    it = iter(items)
    while chunk := list(islice(it, _WRITE_BATCH)):
        batch = {k: v for k, v in chunk}
        barrier = not seen.isdisjoint(batch)
        seen.update(batch)
        yield [
            {"PutRequest": {"Item": {
                "pk": {"S": f"{prefix}#{shard_of(k):02d}"},
                "sk": {"S": k},
                "v": {"S": v},
            }}}
            for k, v in batch.items()
        ], barrier  # fmt: skip
