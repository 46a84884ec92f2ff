"""The Redis prediction store (redis-py): one hash per run, one meta hash per store.

Keys, under a prefix (default `modelhost:predictions`):
  `{prefix}:stores`               set of store names
  `{prefix}:store:{name}`         hash: run_id, key_count, loaded_at_s, value_format
  `{prefix}:run:{name}:{run_id}`  hash: key → prediction

A get is one Lua script that reads the store's run id and the run's hash together; scripts
run atomically, so a get reads exactly one run even while a load switches runs. A load
fills a staging hash of its own in pipelined batches, then one script renames it to the
run's hash, switches the meta hash and UNLINKs the old run (freed in the background).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
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

_BATCH_KEYS = 10_000
_STAGING_TTL_S = 24 * 3600

# KEYS[1] the store's meta hash; ARGV[1] the run hash prefix, ARGV[2..] the keys.
# Returns {run_id, key_count, loaded_at_s, value_format, v1, v2, ...} or nil (no store).
_GET_SCRIPT = """
local meta = redis.call('HMGET', KEYS[1], 'run_id', 'key_count', 'loaded_at_s', 'value_format')
if not meta[1] then return nil end
local values = redis.call('HMGET', ARGV[1] .. meta[1], unpack(ARGV, 2))
local out = {meta[1], meta[2], meta[3], meta[4]}
for i = 1, #values do out[i + 4] = values[i] end
return out
"""


# KEYS: the store's meta hash, the set of stores, the load's staging hash.
# ARGV: run key prefix, run id, key count, loaded at, value format, store name.
# Makes the staged run current and drops the previous one, atomically (scripts are).
_SWITCH_SCRIPT = """
local old = redis.call('HGET', KEYS[1], 'run_id')
if old == ARGV[2] then
  redis.call('UNLINK', KEYS[3])
  return {'current', old}
end
local run_key = ARGV[1] .. ARGV[2]
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RENAME', KEYS[3], run_key)
  redis.call('PERSIST', run_key)
else
  redis.call('DEL', run_key)
end
redis.call('HSET', KEYS[1], 'run_id', ARGV[2], 'key_count', ARGV[3], 'loaded_at_s', ARGV[4],
           'value_format', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[6])
if old then redis.call('UNLINK', ARGV[1] .. old) end
return {'switched', old or ''}
"""


class RedisPredictionStore(PredictionStore):
    """Prediction stores in a Redis server (standalone; cluster mode is not supported)."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "modelhost:predictions") -> None:
        import redis

        self._redis = redis
        self.url = url
        self.prefix = prefix
        self.client: Any = redis.Redis.from_url(url, decode_responses=True)
        self._get_script = self.client.register_script(_GET_SCRIPT)
        self._switch_script = self.client.register_script(_SWITCH_SCRIPT)
        # The gateway's lookups use an asyncio client (made on first use, in its loop), so
        # a lookup costs one round trip and no thread hop.
        self._aclient: Any = None
        self._aget_script: Any = None

    def _meta_key(self, store: str) -> str:
        return f"{self.prefix}:store:{store}"

    def _run_prefix(self, store: str) -> str:
        return f"{self.prefix}:run:{store}:"

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._redis.RedisError as exc:
            raise PredictionStoreUnavailable(
                f"Redis at {self._safe_url()} failed to {what}: {type(exc).__name__}: {exc}"
            ) from exc

    def _safe_url(self) -> str:
        # Never echo a password from the URL into an error a client reads.
        _, sep, tail = self.url.rpartition("@")
        return f"{self.url.split('://', 1)[0]}://***@{tail}" if sep else self.url

    def load(
        self,
        store: str,
        run_id: str,
        items: Iterable[tuple[str, str]],
        value_format: ValueFormat,
    ) -> RunInfo:
        if (current := self._loaded_already(store, run_id)) is not None:
            return current
        # Each load writes its own staging hash, renamed into place by the switch script:
        # two loads of one run id cannot interleave, and a crashed load's hash expires.
        staging = f"{self.prefix}:staging:{store}:{run_id}:{uuid.uuid4().hex}"
        it = iter(items)
        count = 0
        try:
            while batch := dict(islice(it, _BATCH_KEYS)):
                pipe = self.client.pipeline(transaction=False)
                pipe.hset(staging, mapping=batch)
                pipe.expire(staging, _STAGING_TTL_S)
                self._call("write a batch", pipe.execute)
            count = int(self._call("count a run", self.client.hlen, staging))
            now = time.time()
            status, _old = self._call(
                "switch runs",
                self._switch_script,
                [self._meta_key(store), f"{self.prefix}:stores", staging],
                [self._run_prefix(store), run_id, count, repr(now), value_format.value, store],
            )
        except BaseException:
            # A failed load leaves nothing behind (the current run was never touched).
            self._call("clear a failed run", self.client.unlink, staging)
            raise
        if status == "current":  # another load of this run id won the race
            current = self.describe(store)
            assert current is not None
            return RunInfo(**{**current.__dict__, "loaded": False})
        return RunInfo(store, run_id, count, now, value_format)

    def get_many(self, store: str, keys: Sequence[str]) -> Lookup:
        unique = list(dict.fromkeys(keys))
        out = self._call(
            "read", self._get_script, [self._meta_key(store)], [self._run_prefix(store), *unique]
        )
        return self._lookup(store, unique, out)

    async def get_many_async(self, store: str, keys: Sequence[str]) -> Lookup:
        if self._aclient is None:
            import redis.asyncio

            self._aclient = redis.asyncio.Redis.from_url(self.url, decode_responses=True)
            self._aget_script = self._aclient.register_script(_GET_SCRIPT)
        unique = list(dict.fromkeys(keys))
        try:
            out = await self._aget_script(
                keys=[self._meta_key(store)], args=[self._run_prefix(store), *unique]
            )
        except self._redis.RedisError as exc:
            raise PredictionStoreUnavailable(
                f"Redis at {self._safe_url()} failed to read: {type(exc).__name__}: {exc}"
            ) from exc
        return self._lookup(store, unique, out)

    async def get_async(self, store: str, key: str) -> tuple[RunInfo, str | None]:
        found = await self.get_many_async(store, [key])
        return found.run, found.values.get(key)

    def _lookup(self, store: str, unique: list[str], out: Any) -> Lookup:
        if out is None:
            raise no_such_store(store)
        run = RunInfo(store, out[0], int(out[1]), float(out[2]), ValueFormat(out[3]))
        values = {k: v for k, v in zip(unique, out[4:], strict=False) if v is not None}
        return Lookup(run, values)

    def describe(self, store: str) -> RunInfo | None:
        meta = self._call("describe a store", self.client.hgetall, self._meta_key(store))
        if not meta:
            return None
        return RunInfo(
            store,
            meta["run_id"],
            int(meta["key_count"]),
            float(meta["loaded_at_s"]),
            ValueFormat(meta["value_format"]),
        )

    def list_stores(self) -> list[RunInfo]:
        names = sorted(self._call("list stores", self.client.smembers, f"{self.prefix}:stores"))
        found = (self.describe(name) for name in names)
        return [run for run in found if run is not None]

    def delete(self, store: str) -> bool:
        current = self.describe(store)
        if current is None:
            return False
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._meta_key(store))
        pipe.srem(f"{self.prefix}:stores", store)
        pipe.unlink(self._run_prefix(store) + current.run_id)
        self._call("delete a store", pipe.execute)
        return True

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
        self.close()
