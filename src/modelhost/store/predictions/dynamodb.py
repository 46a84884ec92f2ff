"""The DynamoDB prediction store (boto3): the seeds' "load batch predictions, read by key" pattern.

One table (created on first use, on-demand billing) with a string partition key `pk` and
sort key `sk`:
  registry  pk = "#stores",                      sk = store  → run_id, key_count, loaded_at_s,
                                                                 value_format
  rows      pk = "{store}#{run_id}#{shard:02d}", sk = key    → v (the prediction)

Rows are spread over `SHARDS` partitions per run so reads do not pile onto one partition,
and a run can still be listed (to delete it) with one Query per shard.

DynamoDB has no multi-item snapshot, so a get reads the registry, then the rows; if a key is
missing it re-reads the registry and, if the run changed meanwhile (the old run is being
deleted), reads again from the new run. Rows of a run never change, so a get still answers
from exactly one run and never misses a key both runs hold.
"""

from __future__ import annotations

import time
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
    check_run_id,
    check_store_name,
    no_such_store,
)

SHARDS = 16
_REGISTRY = "#stores"
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
        check_store_name(store)
        check_run_id(run_id)
        self.ensure_table()
        current = self.describe(store)
        if current is not None and current.run_id == run_id:
            return RunInfo(**{**current.__dict__, "loaded": False})
        self._drop_run(store, run_id)  # left-overs of an interrupted load of this run id
        seen: set[str] = set()

        def requests() -> Iterator[list[dict[str, Any]]]:
            # Later duplicates within one batch would be refused by DynamoDB; last one wins.
            it = iter(items)
            while chunk := list(islice(it, _WRITE_BATCH)):
                batch = {k: v for k, v in chunk}
                seen.update(batch)
                yield [
                    {
                        "PutRequest": {
                            "Item": {
                                "pk": {"S": f"{store}#{run_id}#{shard_of(k):02d}"},
                                "sk": {"S": k},
                                "v": {"S": v},
                            }
                        }
                    }
                    for k, v in batch.items()
                ]

        try:
            self._write_all(requests())
        except BaseException:
            # A failed load leaves nothing behind (the current run was never touched).
            self._drop_run(store, run_id)
            raise
        now = time.time()
        run = RunInfo(store, run_id, len(seen), now, value_format)
        self._call(
            "switch runs",
            "put_item",
            TableName=self.table,
            Item={
                "pk": {"S": _REGISTRY},
                "sk": {"S": store},
                "run_id": {"S": run_id},
                "key_count": {"N": str(run.key_count)},
                "loaded_at_s": {"N": repr(now)},
                "value_format": {"S": value_format.value},
            },
        )
        if current is not None:
            self._drop_run(store, current.run_id)
        return run

    def _write_all(self, batches: Iterable[list[dict[str, Any]]]) -> None:
        with ThreadPoolExecutor(_WRITERS) as pool:
            pending = []
            for batch in batches:
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

    def _drop_run(self, store: str, run_id: str) -> None:
        def deletes() -> Iterator[list[dict[str, Any]]]:
            for shard in range(SHARDS):
                keys = self._query_keys(f"{store}#{run_id}#{shard:02d}")
                while chunk := list(islice(keys, _WRITE_BATCH)):
                    yield [{"DeleteRequest": {"Key": key}} for key in chunk]

        self._write_all(deletes())

    def _query_keys(self, pk: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ProjectionExpression": "pk, sk",
        }
        while True:
            page = self._call("list a run", "query", **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- reading ------------------------------------------------------------------------

    def get_many(self, store: str, keys: Sequence[str]) -> Lookup:
        self.ensure_table()
        unique = list(dict.fromkeys(keys))
        run = self.describe(store)
        for _ in range(_SWITCH_RETRIES):
            if run is None:
                raise no_such_store(store)
            values = self._read(store, run.run_id, unique)
            if len(values) == len(unique):
                return Lookup(run, values)
            # A miss may be the old run being deleted under us: if the store switched
            # runs meanwhile, read everything again from the new one.
            latest = self.describe(store)
            if latest is not None and latest.run_id == run.run_id:
                return Lookup(run, values)  # real misses
            run = latest
        if run is None:
            raise no_such_store(store)
        return Lookup(run, self._read(store, run.run_id, unique))

    def _read(self, store: str, run_id: str, keys: list[str]) -> dict[str, str]:
        if len(keys) == 1:
            key = keys[0]
            answer = self._call(
                "read a key",
                "get_item",
                TableName=self.table,
                Key={"pk": {"S": f"{store}#{run_id}#{shard_of(key):02d}"}, "sk": {"S": key}},
            )
            item = answer.get("Item")
            return {key: item["v"]["S"]} if item else {}
        values: dict[str, str] = {}
        for start in range(0, len(keys), _READ_BATCH):
            wanted: list[dict[str, Any]] = [
                {"pk": {"S": f"{store}#{run_id}#{shard_of(k):02d}"}, "sk": {"S": k}}
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
        self.ensure_table()
        answer = self._call(
            "describe a store",
            "get_item",
            TableName=self.table,
            Key={"pk": {"S": _REGISTRY}, "sk": {"S": store}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        return _run(item) if item else None

    def list_stores(self) -> list[RunInfo]:
        self.ensure_table()
        return [_run(item) for item in self._query_items(_REGISTRY)]

    def _query_items(self, pk: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        while True:
            page = self._call("list stores", "query", **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete(self, store: str) -> bool:
        current = self.describe(store)
        if current is None:
            return False
        self._call(
            "delete a store",
            "delete_item",
            TableName=self.table,
            Key={"pk": {"S": _REGISTRY}, "sk": {"S": store}},
        )
        self._drop_run(store, current.run_id)
        return True


def _run(item: dict[str, Any]) -> RunInfo:
    return RunInfo(
        item["sk"]["S"],
        item["run_id"]["S"],
        int(item["key_count"]["N"]),
        float(item["loaded_at_s"]["N"]),
        ValueFormat(item["value_format"]["S"]),
    )
