"""Where a multi-model load's files come from: the `url` of `POST /models`, made local.

The instance is its own host agent. `url` is the artifact's location as the endpoint's
ModelDataUrl prefix and the TargetModel name it (`s3://bucket/prefix/CA.tar.gz`,
`file:///models/CA.tar.gz`, a plain path), or an already unpacked local directory
(SageMaker's own contract passes one, and so do users' tests). A directory is loaded in
place; anything else goes through the artifact store (`store.artifacts`: safe
extraction, unpack limits, a content-addressed cache in `artifact_cache_dir`, shared by
every instance and kept across restarts, so a reload after an eviction never downloads
again). In a bounded cache (`artifact_cache_bytes`: the gateway's or a Ray node's,
`store/cache_bound.py`) each loaded model's entry is leased until the model is unloaded
(`release`), so nobody evicts it under the model, and a fetch that adds an entry evicts
idle ones beyond the budget. With `allowed_data_prefixes` set, a location must lie under one of them
or in the instance's own artifact cache.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from modelhost.container.config import InstanceConfig

if TYPE_CHECKING:
    from modelhost.store.artifacts import ArtifactStore
    from modelhost.store.cache_bound import Lease

log = logging.getLogger("modelhost.artifacts")

LOAD_BODY_RULE = 'The body must be JSON {"model_name": "<name>", "url": "<location>"}'
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
LEASE_ATTEMPTS = 3


class LoadRefused(Exception):
    """A load cannot happen; `status` is the HTTP answer (400, 404, 507)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra  # more fields for the JSON answer


@dataclass(frozen=True)
class LoadRequest:
    """A `POST /models` body: the model's name and location; `expect_use` is the built-in
    instance's own extension (the gateway loads a model it is about to invoke), `fields`
    the body as sent without it (what a user's server may be forwarded)."""

    name: str
    url: str
    expect_use: bool
    fields: dict[str, Any]


def parse_load_request(body: bytes) -> LoadRequest:
    """The body of `POST /models`; raises `LoadRefused` (400) naming the rule."""
    try:
        doc = json.loads(body or b"{}")
        if not isinstance(doc, dict):
            raise TypeError
        name, url = doc["model_name"], doc["url"]
        if not isinstance(name, str) or not name or not isinstance(url, str) or not url:
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise LoadRefused(400, LOAD_BODY_RULE) from None
    fields = {k: v for k, v in doc.items() if k != "expect_use"}
    return LoadRequest(name, url, doc.get("expect_use", False) is True, fields)


def default_cache_dir() -> Path:
    """The artifact cache of an instance started without one (beside the packages cache)."""
    return Path.home() / ".modelhost" / "artifacts"


class ModelSource:
    """Turns load locations into local model directories (see the module docstring).

    `local_dir` blocks (downloads, unpacks): call it in a thread. Thread-safe.
    """

    def __init__(self, config: InstanceConfig) -> None:
        self.config = config
        self.cache_dir = config.artifact_cache_dir or default_cache_dir()
        self._store: ArtifactStore | None = None
        self._lock = threading.Lock()
        # Location → its unpacked directory: artifacts are immutable per name (as in
        # SageMaker), so a reload after an eviction neither downloads nor re-hashes.
        self._fetched: dict[str, Path] = {}
        # Model name → its lease on a bounded cache's entry, held while the model is loaded
        # so that nobody evicts it under the model.
        self._leases: dict[str, Lease] = {}

    def local_dir(self, name: str, url: str) -> Path:
        """The unpacked model `name` of location `url`; raises `LoadRefused`."""
        return self.fetch(name, url)[0]

    def fetch(self, name: str, url: str) -> tuple[Path, bool]:
        """(`local_dir`, whether it was downloaded or unpacked now rather than found). In a
        bounded cache the model's entry stays leased until `release(name)`."""
        fetched = False
        for _ in range(LEASE_ATTEMPTS):
            path, worked = self._fetch(name, url)
            fetched = fetched or worked
            if self._leased(name, path):
                if worked and self.config.artifact_cache_bytes:
                    self._bound()
                return path, fetched
            self._fetched.pop(url, None)  # evicted between the fetch and the lease
        raise LoadRefused(
            507,
            f"Model {name}: the artifact cache evicted {url} while it was fetched; "
            "raise artifact_cache_bytes (ray_node_cache_bytes on Ray)",
        )

    def release(self, name: str) -> None:
        """The model is unloaded: its cache entry may be evicted again."""
        held = self._leases.pop(name, None)
        if held is not None:
            held.close()

    def _leased(self, name: str, path: Path) -> bool:
        """Whether `path` may be used: leased for `name` (in a bounded cache) or no entry."""
        if not self.config.artifact_cache_bytes or path.parent != self.cache_dir:
            return True  # an unbounded cache, or a directory loaded in place
        from modelhost.store import cache_bound  # as the store: only when something is fetched

        if not cache_bound.is_entry(self.cache_dir, path):
            return True
        held = self._leases.get(name)
        if held is not None and held.entry == path:
            return True
        fresh = cache_bound.lease(self.cache_dir, path)
        if fresh is None:
            return False
        self.release(name)
        self._leases[name] = fresh
        return True

    def _bound(self) -> None:
        """A model was added to a bounded cache: evict idle entries beyond its budget (the
        new one is leased already). A failed eviction never fails the load."""
        from modelhost.store import cache_bound

        try:
            cache_bound.bound(self.cache_dir, self.config.artifact_cache_bytes)
        except OSError as exc:
            log.warning("artifact cache %s: eviction failed: %s", self.cache_dir, exc)

    def _fetch(self, name: str, url: str) -> tuple[Path, bool]:
        hit = self._fetched.get(url)
        if hit is not None and hit.is_dir():
            return hit, False
        local = self._local_path(url)
        if local is not None and not local.exists():
            raise LoadRefused(
                404,
                f"Failed to download model data for {name} at {url}: it is not a directory or "
                "an artifact on this instance",
                artifactError=True,
            )
        self._check_allowed(name, url, local)
        if local is not None and local.is_dir():
            return local, False
        from modelhost.errors import ArtifactError

        try:
            path, fetched = self._artifacts().fetch_counted(url)
        except ArtifactError as exc:
            # `artifactError` tells the gateway this is SageMaker's "Failed to download
            # model data" (a ValidationError to the caller), not a failed model load.
            raise LoadRefused(
                400,
                f"Failed to download model data for {name} at {url}: {exc.message}",
                artifactError=True,
            ) from exc
        self._fetched[url] = path
        return path, fetched

    def _local_path(self, url: str) -> Path | None:
        match = _SCHEME.match(url)
        if match is None:
            return Path(url).expanduser()
        if match.group(1).lower() == "file":
            parts = urlsplit(url)
            if parts.netloc in ("", "localhost") and parts.path:
                return Path(unquote(parts.path))
        return None  # s3:// and the rest: the artifact store says what it supports

    def _check_allowed(self, name: str, url: str, local: Path | None) -> None:
        allowed = self.config.allowed_data_prefixes
        if not allowed:
            return
        from modelhost.errors import ValidationException
        from modelhost.store.locations import normalize, within

        try:
            cache = f"file://{self.cache_dir.resolve()}"
            if local is not None and within(f"file://{local.resolve()}", cache):
                return  # unpacked by a host agent (the gateway) into the shared cache
            if any(within(normalize(url), prefix) for prefix in allowed):
                return
        except ValidationException as exc:
            raise LoadRefused(400, f"Model {name}: {exc.message}") from exc
        raise LoadRefused(
            403,
            f"Model {name}: {url} is not under an allowed data prefix "
            f"({', '.join(allowed)}); MH_INSTANCE_ALLOWED_DATA_PREFIXES says which",
        )

    def _artifacts(self) -> ArtifactStore:
        # Built on the first fetch: boto3 and the store are not imported by instances
        # that only ever load local directories.
        with self._lock:
            if self._store is None:
                from modelhost.store.artifacts import ArtifactStore, UnpackLimits

                c = self.config
                self._store = ArtifactStore.from_values(
                    self.cache_dir,
                    s3_endpoint_url=c.s3_endpoint_url,
                    s3_region=c.s3_region,
                    limits=UnpackLimits(
                        c.artifact_max_unpacked_bytes,
                        c.artifact_max_ratio,
                        c.artifact_max_members,
                    ),
                )
            return self._store
