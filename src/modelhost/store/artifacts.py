"""The artifact store: turns a ModelDataUrl or ModelDataSource into a local model directory.

Archives and single files are cached by the SHA-256 of their bytes under
`<artifact_cache_dir>/<digest>/`. An entry is built in a temporary directory beside it and
renamed into place, then marked complete, all under a per-entry file lock, so threads and
processes sharing the cache never see a half-unpacked directory and unpack each archive once.

With a budget (`artifact_cache_bytes`, a Ray node's `ray_node_cache_bytes`) the cache is
bounded (`store/cache_bound.py`): a user fetches through `leased`/`use`, holds the lease
while it uses the directory, and a fetch that adds an entry evicts the least recently used
entries nobody leases.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from modelhost.errors import ArtifactError
from modelhost.store import cache_bound
from modelhost.store.cache_bound import Leased
from modelhost.store.s3 import S3Backend, sha256_text
from modelhost.store.unpack import _CHUNK_BYTES, UnpackLimits, _is_archive, _unpack

if TYPE_CHECKING:
    # Only for the type: an instance builds its store from explicit values (`from_values`)
    # and must not import the gateway's settings (pydantic) on its way to a first load.
    from modelhost.settings import Settings

log = logging.getLogger("modelhost.artifacts")

if not hasattr(tarfile, "data_filter"):  # the safe extraction below relies on it
    raise ImportError("modelhost needs Python 3.11.4 or later (tarfile extraction filters)")

# auto: what `fetch` does (guess from the content); the others are ModelDataSource's
# explicit forms: archive = S3Object+Gzip, file = S3Object+None, prefix = S3Prefix+None.
Mode = Literal["auto", "archive", "file", "prefix"]

_SOURCE_MODES: dict[tuple[object, object], Mode] = {
    ("S3Object", "Gzip"): "archive",
    ("S3Object", "None"): "file",
    ("S3Prefix", "None"): "prefix",
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class ArtifactStore:
    """Resolves model artifact locations to local directories used as /opt/ml/model.

    This is an extension point: `fetch` picks a backend by URL scheme. Local paths,
    `file://` and `s3://` are built in; a later backend (for example `https://`) only has
    to bring the bytes to a local file and can reuse the content-addressed cache here.
    Instances are thread-safe; several processes may share one `artifact_cache_dir`.
    """

    def __init__(self, settings: Settings) -> None:
        self._setup(
            settings.artifact_cache_dir,
            settings.s3_endpoint_url,
            None,  # the gateway's S3 client finds its region as boto3 does
            UnpackLimits(
                settings.artifact_max_unpacked_bytes,
                settings.artifact_max_ratio,
                settings.artifact_max_members,
            ),
            budget_bytes=settings.artifact_cache_bytes,
        )

    @classmethod
    def from_values(
        cls,
        cache_dir: Path,
        *,
        s3_endpoint_url: str | None = None,
        s3_region: str | None = None,
        limits: UnpackLimits | None = None,
        s3_credentials: tuple[str, str] | None = None,
        budget_bytes: int | None = None,
    ) -> ArtifactStore:
        """A store configured by explicit values (an instance's or a Ray node's own config,
        not `Settings`); `s3_credentials` (key id, secret) replace boto3's own lookup;
        `budget_bytes` bounds the cache (None: unbounded)."""
        store = cls.__new__(cls)
        store._setup(
            cache_dir,
            s3_endpoint_url,
            s3_region,
            limits or UnpackLimits(),
            s3_credentials,
            budget_bytes=budget_bytes,
        )
        return store

    def _setup(
        self,
        cache_dir: Path,
        s3_endpoint_url: str | None,
        s3_region: str | None,
        limits: UnpackLimits,
        s3_credentials: tuple[str, str] | None = None,
        *,
        budget_bytes: int | None = None,
    ) -> None:
        self.budget_bytes = budget_bytes
        self._cache = _Cache(cache_dir)
        self._limits = limits
        self._s3 = S3Backend(s3_endpoint_url, self._cache, s3_region, s3_credentials)

    @property
    def cache_dir(self) -> Path:
        """Where fetched artifacts are unpacked (shared by every process given the same one)."""
        return self._cache.root

    def fetch(self, model_data_url: str) -> Path:
        """A local directory with the model files of `model_data_url` (a container's ModelDataUrl).

        A local directory is returned as it is; a tar archive (gzip or not) is unpacked; a
        single other file is placed alone in a directory; an S3 prefix is downloaded whole.
        """
        if not model_data_url.strip():
            raise ArtifactError("ModelDataUrl is empty; give an s3:// URL, file:// URL or path")
        return self._fetch(model_data_url, "auto", f"ModelDataUrl {model_data_url}")

    def fetch_counted(self, model_data_url: str) -> tuple[Path, bool]:
        """`fetch`, and whether this call downloaded or unpacked anything (False: all was
        in the cache already), for a ModelDownloadingTime that counts real downloads."""
        return self.counted(lambda: self.fetch(model_data_url))

    def counted(self, fetch: Callable[[], Path]) -> tuple[Path, bool]:
        """`fetch()` (one of this store's fetches), and whether it downloaded or unpacked
        anything in this thread (False: all was in the cache already)."""
        self._cache.work.done = False
        path = fetch()
        return path, bool(getattr(self._cache.work, "done", False))

    def leased(self, fetch: Callable[[], Path]) -> Leased:
        """`fetch()` (one of this store's fetches) with its cache entry leased until the
        result is closed, in a bounded cache; a fetch that added an entry then evicts what
        the budget needs (a failed eviction is logged, never raised). Unbounded: no lease."""
        if self.budget_bytes is None:
            path, worked = self.counted(fetch)
            return Leased(path, worked)
        got = cache_bound.fetch_leased(
            self.cache_dir, lambda: self.counted(fetch), advice="raise artifact_cache_bytes"
        )
        if got.fetched:
            self.bound()
        return got

    def use(self, model_data_url: str) -> Leased:
        """`fetch(model_data_url)`, leased: `with store.use(url) as model_dir: ...`."""
        return self.leased(lambda: self.fetch(model_data_url))

    def bound(self, warn: bool = True) -> cache_bound.Eviction | None:
        """Evict what the budget needs now (the periodic pass calls it too, `warn=False`);
        None when the cache is unbounded or the eviction failed (logged)."""
        if self.budget_bytes is None:
            return None
        try:
            return cache_bound.bound(self.cache_dir, self.budget_bytes, warn)
        except OSError as exc:
            log.warning("artifact cache %s: eviction failed: %s", self.cache_dir, exc)
            return None

    def fetch_source(self, s3_data_source: Mapping[str, Any]) -> Path:
        """Like `fetch`, for ModelDataSource.S3DataSource: {S3Uri, S3DataType, CompressionType}."""
        field = "ModelDataSource.S3DataSource"
        uri = s3_data_source.get("S3Uri")
        data_type = s3_data_source.get("S3DataType")
        compression = s3_data_source.get("CompressionType")
        if not isinstance(uri, str) or not uri:
            raise ArtifactError(f"{field}.S3Uri is required (an s3:// URI, file:// URL or path)")
        mode = _SOURCE_MODES.get((data_type, compression))
        if mode is None:
            raise ArtifactError(
                f"{field}: S3DataType {data_type!r} with CompressionType {compression!r} is not "
                "supported; use S3Object+Gzip (a .tar.gz), S3Object+None (one file) or "
                "S3Prefix+None (every object under a prefix)"
            )
        return self._fetch(uri, mode, f"{field}.S3Uri {uri}")

    # --- backends ------------------------------------------------------------------------

    def _fetch(self, url: str, mode: Mode, label: str) -> Path:
        match = _SCHEME.match(url)
        scheme = match.group(1).lower() if match else ""
        try:
            if scheme == "s3":
                return self._s3.fetch(
                    url,
                    mode,
                    label,
                    lambda path, name, sha: self._place_file(path, name, sha, mode, label),
                )
            if scheme == "file":
                return self._fetch_local(_file_url_path(url, label), mode, label)
            if scheme:
                raise ArtifactError(
                    f"{label}: unsupported scheme '{scheme}://'; use an s3:// URL, a file:// URL "
                    "or a local path (copy the artifact to S3 or to this machine first)"
                )
            return self._fetch_local(Path(url), mode, label)
        except OSError as exc:
            # The local disk or the artifact's permissions, not the request: say which.
            raise ArtifactError(
                f"{label}: {exc}; check that the modelhost server can read the artifact and "
                f"write the artifact cache {self._cache.root}"
            ) from exc

    def _fetch_local(self, path: Path, mode: Mode, label: str) -> Path:
        path = path.expanduser().absolute()
        if not path.exists():
            raise ArtifactError(
                f"{label}: {path} does not exist; check the path (it is read on the machine "
                "running modelhost)"
            )
        if path.is_dir():
            if mode in ("archive", "file"):
                raise ArtifactError(f"{label}: {path} is a directory; S3Object needs one file")
            return path  # used in place: no copy, edits show up on the next load
        if mode == "prefix":
            raise ArtifactError(f"{label}: {path} is a file; S3Prefix needs a directory")
        digest = _sha256_file(path)
        return self._place_file(path, path.name, digest, mode, label)

    def _place_file(self, path: Path, name: str, digest: str, mode: Mode, label: str) -> Path:
        """Cache one local file: unpacked if it is an archive, else alone under its name."""
        if mode == "archive" or (mode == "auto" and _is_archive(path, name, label)):
            return self._cache.fill(digest, lambda into: _unpack(path, into, label, self._limits))
        if name in ("", ".", "..") or "\0" in name:
            raise ArtifactError(f"{label}: '{name}' cannot be a file name; rename the artifact")
        # The name is part of the key: the same bytes may be loaded by name (model.joblib).
        return self._cache.fill(
            sha256_text(digest, name), lambda into: shutil.copyfile(path, into / name)
        )


class _Cache:
    """Content-addressed directories under `root`, built once across threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Per thread: whether this thread downloaded or unpacked since it last reset it.
        self.work = threading.local()

    def lookup(self, key: str) -> Path | None:
        entry = self.root / key
        complete = (self.root / f"{key}.complete").exists() and entry.is_dir()
        return entry if complete else None

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        # flock is per open file description, so it excludes other threads of this process
        # (each opens its own) as well as other processes, and dies with a crashed holder.
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{key}.lock", "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def fill(self, key: str, populate: Callable[[Path], object]) -> Path:
        """The complete entry `key`, running `populate(empty_dir)` if nobody has yet."""
        if (hit := self.lookup(key)) is not None:
            return hit
        with self.locked(key):
            if (hit := self.lookup(key)) is not None:
                return hit
            entry, marker = self.root / key, self.root / f"{key}.complete"
            # Left by a crash between rename and marker, or a half-deleted entry: no one
            # can be using it, since readers need both the directory and the marker.
            marker.unlink(missing_ok=True)
            if entry.exists():
                shutil.rmtree(entry)
            for stale in self.root.glob(f".tmp-{key}-*"):  # a crashed builder's; we hold the lock
                shutil.rmtree(stale, ignore_errors=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=self.root))
            try:
                self.work.done = True
                populate(scratch)
                scratch.chmod(0o755)  # mkdtemp's 0o700 would hide it from other users
                os.rename(scratch, entry)
            finally:
                if scratch.exists():
                    shutil.rmtree(scratch, ignore_errors=True)
            marker.touch()
            return entry

    @contextmanager
    def scratch_file(self) -> Iterator[Path]:
        self.work.done = True  # only downloads use a scratch file
        self.root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".download-", dir=self.root)
        os.close(fd)
        try:
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def read_ref(self, ref: str) -> Path | None:
        try:
            key = (self.root / ".refs" / ref).read_text().strip()
        except FileNotFoundError:
            return None
        return self.lookup(key) if key else None

    def write_ref(self, ref: str, entry: Path) -> None:
        refs = self.root / ".refs"
        refs.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=refs)
        with os.fdopen(fd, "w") as handle:
            handle.write(entry.name)
        os.replace(name, refs / ref)


# --- archives -----------------------------------------------------------------------------


def _file_url_path(url: str, label: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path:
        raise ArtifactError(
            f"{label}: a file:// URL names an absolute path on this machine: file:///abs/path"
        )
    return Path(unquote(parts.path))


def _sha256_file(path: Path) -> str:
    # Hashed in place, not copied first: a local archive can be many GB (the price: a file
    # rewritten between hashing and unpacking lands under the old digest).
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
