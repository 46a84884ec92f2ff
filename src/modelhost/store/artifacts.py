"""The artifact store: turns a ModelDataUrl or ModelDataSource into a local model directory.

Archives and single files are cached by the SHA-256 of their bytes under
`<artifact_cache_dir>/<digest>/`. An entry is built in a temporary directory beside it and
renamed into place, then marked complete, all under a per-entry file lock, so threads and
processes sharing the cache never see a half-unpacked directory and unpack each archive once.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from modelhost.errors import ArtifactError
from modelhost.store.s3 import S3Backend, sha256_text

if TYPE_CHECKING:
    # Only for the type: an instance builds its store from explicit values (`from_values`)
    # and must not import the gateway's settings (pydantic) on its way to a first load.
    from modelhost.settings import Settings

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
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_BYTES = 1 << 20
_MAX_LINK_HOPS = 40  # what Linux allows when following symlinks
_REBUILD = (
    "rebuild the archive with paths relative to its root (tar -czf model.tar.gz -C model_dir .)"
)
_DEREF = "replace links with the files they point to (tar -czhf model.tar.gz -C model_dir .)"
_FILTER_REASONS: dict[type[tarfile.FilterError], tuple[str, str]] = {
    tarfile.AbsolutePathError: ("has an absolute path", _REBUILD),
    tarfile.OutsideDestinationError: ("would be written outside the model directory", _REBUILD),
    tarfile.AbsoluteLinkError: ("links to an absolute path", _DEREF),
    tarfile.LinkOutsideDestinationError: ("links outside the model directory", _DEREF),
    tarfile.SpecialFileError: ("is a device or FIFO, not a file", _REBUILD),
}


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
        )

    @classmethod
    def from_values(
        cls,
        cache_dir: Path,
        *,
        s3_endpoint_url: str | None = None,
        s3_region: str | None = None,
        limits: UnpackLimits | None = None,
    ) -> ArtifactStore:
        """A store configured by explicit values (an instance's own config, not `Settings`)."""
        store = cls.__new__(cls)
        store._setup(cache_dir, s3_endpoint_url, s3_region, limits or UnpackLimits())
        return store

    def _setup(
        self,
        cache_dir: Path,
        s3_endpoint_url: str | None,
        s3_region: str | None,
        limits: UnpackLimits,
    ) -> None:
        self._cache = _Cache(cache_dir)
        self._limits = limits
        self._s3 = S3Backend(s3_endpoint_url, self._cache, s3_region)

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
        self._cache.work.done = False
        path = self.fetch(model_data_url)
        return path, bool(getattr(self._cache.work, "done", False))

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


def _is_archive(path: Path, name: str, label: str) -> bool:
    """Whether a file is a tar archive (by name or content); a broken gzip raises."""
    if name.lower().endswith(_ARCHIVE_SUFFIXES):
        return True
    if not _is_gzip(path):
        return tarfile.is_tarfile(path)
    try:
        with gzip.open(path) as stream:
            block = stream.read(tarfile.BLOCKSIZE)
    except (OSError, EOFError, zlib.error) as exc:
        raise _invalid(label, exc) from exc
    if block == bytes(tarfile.BLOCKSIZE):
        return True  # an empty archive: just its end-of-archive block
    try:
        tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        return False  # a gzip-compressed single file (model.json.gz): keep it as it is
    return True


@dataclass(frozen=True)
class UnpackLimits:
    """Decompression-bomb caps, checked from the headers before anything is written.

    The defaults are the `artifact_max_*` settings' defaults.
    """

    max_bytes: int = 20 * 1024**3
    max_ratio: float = 200.0
    max_members: int = 100_000


def _check_size(
    members: list[tarfile.TarInfo], archive: Path, label: str, lim: UnpackLimits
) -> None:
    if len(members) > lim.max_members:
        raise ArtifactError(
            f"{label}: the archive has {len(members)} members; the limit is {lim.max_members} "
            "(artifact_max_members)"
        )
    total = sum(m.size for m in members if m.isfile())
    if total > lim.max_bytes:
        raise ArtifactError(
            f"{label}: the archive unpacks to {total} bytes; the limit is {lim.max_bytes} "
            "(artifact_max_unpacked_bytes)"
        )
    packed = max(archive.stat().st_size, 1)
    # Small archives are exempt: a 1 KB config compresses well and harms no one.
    if total > 16 * 1024 * 1024 and total / packed > lim.max_ratio:
        raise ArtifactError(
            f"{label}: the archive unpacks to {total / packed:.0f} times its size; the limit is "
            f"{lim.max_ratio:g} (artifact_max_ratio): refusing a likely decompression bomb"
        )


def _read_members(
    tar: tarfile.TarFile, archive: Path, label: str, limits: UnpackLimits | None
) -> list[tarfile.TarInfo]:
    """Every header, checking the caps as each one is read: a bomb is refused before the
    gzip stream is decompressed past its first oversized member."""
    members: list[tarfile.TarInfo] = []
    while (member := tar.next()) is not None:
        members.append(member)
        if limits is not None:
            _check_size(members, archive, label, limits)
    return members


def _unpack(archive: Path, into: Path, label: str, limits: UnpackLimits | None = None) -> None:
    try:
        # "r:*" would hide the gzip error among its attempts at bz2, xz and plain tar.
        with tarfile.open(archive, "r:gz" if _is_gzip(archive) else "r:*") as tar:
            tar.errorlevel = 2  # a link that cannot be made is an error, not a debug message
            # All headers first (gzip is decompressed twice): a broken header fails before any
            # write, and the checks see every symlink (a later one can redirect an earlier one).
            members = _read_members(tar, archive, label, limits)
            _check_members(members, label)
            tar.extractall(into, members=members, filter="data")
            # gzip checks its CRC only at the end of the stream, which tar may stop short of.
            while tar.fileobj is not None and tar.fileobj.read(_CHUNK_BYTES):
                pass
    except tarfile.FilterError as exc:
        reason, fix = _FILTER_REASONS.get(type(exc), ("was refused", _REBUILD))
        raise _refused(label, exc.tarinfo.name, reason, fix) from exc
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, KeyError) as exc:
        raise _invalid(label, exc) from exc


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC


def _check_members(members: list[tarfile.TarInfo], label: str) -> None:
    """Refuse any member that could write or point outside the model directory.

    The data filter is the second line: it strips a leading '/' instead of refusing it, and
    CPython before 3.11.13/3.12.11 let symlink chains past it (CVE-2025-4517), so links are
    resolved here against the archive's own symlinks, without touching the disk.
    """
    symlinks = {"/".join(_parts(m.name)): m.linkname for m in members if m.issym()}
    for member in members:
        name = member.name
        if name.startswith("/"):
            raise _refused(label, name, "has an absolute path", _REBUILD)
        parts = _parts(name)
        if ".." in parts:
            raise _refused(label, name, "would be written outside the model directory", _REBUILD)
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in symlinks:
                raise _refused(label, name, "would be written through a symlink", _DEREF)
        if member.issym() or member.islnk():
            if member.linkname.startswith("/"):
                raise _refused(label, name, "links to an absolute path", _DEREF)
            # A symlink is relative to its own folder; a hard link to the archive root.
            start = parts[:-1] if member.issym() else []
            if _resolve(start, member.linkname, symlinks) is None:
                raise _refused(label, name, "links outside the model directory", _DEREF)
        elif not (member.isfile() or member.isdir()):
            raise _refused(label, name, "is a device or FIFO, not a file", _REBUILD)


def _resolve(start: list[str], target: str, symlinks: Mapping[str, str]) -> list[str] | None:
    """Follow `target` from folder `start` through the archive's symlinks, as realpath
    would on disk; None if it leaves the root, turns absolute or loops."""
    resolved = list(start)
    pending = target.split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        resolved.append(part)
        link = symlinks.get("/".join(resolved))
        if link is not None:
            hops += 1
            if hops > _MAX_LINK_HOPS or link.startswith("/"):
                return None
            resolved.pop()
            pending = link.split("/") + pending
    return resolved


def _parts(name: str) -> list[str]:
    return [part for part in name.split("/") if part not in ("", ".")]


def _refused(label: str, member: str, reason: str, fix: str) -> ArtifactError:
    return ArtifactError(f"{label}: archive member '{member}' {reason}; {fix}")


def _invalid(label: str, exc: BaseException) -> ArtifactError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return ArtifactError(
        f"{label} is not a valid .tar.gz archive ({detail}); recreate it "
        "(tar -czf model.tar.gz -C model_dir .) and upload it again"
    )


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
