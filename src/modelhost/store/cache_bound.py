"""A bounded artifact cache: leases on the entries in use, LRU eviction of the rest.

The artifact store's cache (`store/artifacts.py`) keeps each entry as `<root>/<key>/` with a
`<root>/<key>.complete` marker, built under `<root>/.locks/<key>.lock`. This module adds,
beside that layout, without changing it:

- **Leases.** In a bounded cache, a process that uses an entry holds `.leases/<key>`
  locked shared (`flock(LOCK_SH)`); the lock lives in the open file description, so it
  is released when the last process holding the descriptor exits, however it exits
  (kill -9 included), and can be handed to a child process (`pass_fds`). Taking a lease
  touches the file: its mtime is the entry's last use.
- **Eviction** (`bound`), run by whoever adds an entry, under `<root>/.locks/evict.lock`:
  entries are sized (once: they never change, the size is kept in `<root>/.sizes/<key>`),
  and while the cache is over its budget the least recently used entry that nobody leases
  is removed. Removing takes the entry's build lock and its lease exclusively, without
  waiting: a busy entry is skipped, never waited for. The marker goes first, so a reader
  either sees a complete entry or none.
- **Leftovers** of crashed builders (scratch directories, entries without their marker,
  stale download files) are swept by the same pass.

A lease is checked after it is taken (the marker must still be there): a process that looked
an entry up just before it was evicted gets `None` and fetches again. Lease files are never
removed: a process blocked on an old lease file's lock must find, once it gets it, the file
every later evictor locks.

`choose_evictions` is the decision alone, a plain function over sizes, last use and the
in-use set; `PassSchedule` says when the periodic pass (entries whose leases were released
go without waiting for the next fetch) is due, by an injected clock. `fetch_leased` is how
every user of a bounded cache fetches: fetch, lease, fetch again if evicted in between.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("modelhost.artifacts")

_MARKER = ".complete"
_KEY = re.compile(r"[0-9a-f]{64}")  # the store's keys: SHA-256 digests
# A download file of a live fetch is written continuously; one untouched this long was
# left by a fetch that died.
STALE_DOWNLOAD_S = 3600.0


@dataclass(frozen=True)
class CacheEntry:
    """One complete cache entry as eviction sees it."""

    key: str
    size_bytes: int
    last_used_s: float  # wall-clock seconds of the last lease (or of its creation)
    in_use: bool  # leased by a live process: never evicted


def choose_evictions(entries: Iterable[CacheEntry], budget_bytes: int) -> list[str]:
    """The keys to evict, least recently used first, until the total fits `budget_bytes`.
    Entries in use are never chosen, so the result may leave the cache over budget."""
    entries = list(entries)
    total = sum(e.size_bytes for e in entries)
    chosen: list[str] = []
    idle = sorted((e for e in entries if not e.in_use), key=lambda e: (e.last_used_s, e.key))
    for entry in idle:
        if total <= budget_bytes:
            break
        chosen.append(entry.key)
        total -= entry.size_bytes
    return chosen


class PassSchedule:
    """When the periodic eviction pass is due: at the first `due()` call, then once
    `interval_s` has passed on `clock` since the last pass it allowed (never with an
    interval of 0: eviction only when an entry is added)."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last_s: float | None = None

    def due(self) -> bool:
        """Whether to run a pass now (a True counts as the pass having run)."""
        if self.interval_s <= 0:
            return False
        now_s = self._clock()
        if self._last_s is not None and now_s - self._last_s < self.interval_s:
            return False
        self._last_s = now_s
        return True


@dataclass(frozen=True)
class Eviction:
    """What one `bound` call did (for the log and the instance log)."""

    evicted: tuple[str, ...]
    freed_bytes: int
    total_bytes: int  # after eviction
    budget_bytes: int
    in_use_bytes: int

    def line(self, where: Path) -> str:
        """One log line; empty when nothing was evicted and the cache fits."""
        if not self.evicted and self.total_bytes <= self.budget_bytes:
            return ""
        text = (
            f"artifact cache {where}: evicted {len(self.evicted)} entries "
            f"({self.freed_bytes} bytes freed); {self.total_bytes} bytes cached, "
            f"budget {self.budget_bytes}"
        )
        if self.total_bytes > self.budget_bytes:
            text += f"; over budget: {self.in_use_bytes} bytes are in use and never evicted"
        return text


class Lease:
    """A shared lock on one entry's lease file, held while a process uses the entry. The
    descriptor may be passed to a child process (`fd`); `close` drops this process's copy."""

    def __init__(self, fd: int, entry: Path) -> None:
        self.fd = fd
        self.entry = entry

    def close(self) -> None:
        """Release this process's hold (a child given the descriptor keeps its own)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        # A lease dropped without `close` (a failed start) must not pin its entry.
        with contextlib.suppress(OSError):
            self.close()


@dataclass
class Leased:
    """A fetched model directory and its lease, held while it is used (None: not an entry
    of a bounded cache, e.g. a directory used in place). `with leased as path:` releases
    it at the end; `fetched` says whether the fetch downloaded or unpacked anything."""

    path: Path
    fetched: bool = False
    lease: Lease | None = None

    def close(self) -> None:
        """Release the lease (idempotent)."""
        if self.lease is not None:
            self.lease.close()

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *_exc: object) -> None:
        self.close()


def fetch_leased(
    root: Path,
    fetch: Callable[[], tuple[Path, bool]],
    attempts: int = 3,
    advice: str = "raise the cache's budget",
) -> Leased:
    """`fetch()` (a store's fetch and whether it worked) with its entry in the cache at
    `root` leased; an entry evicted between the fetch and the lease is fetched again, up to
    `attempts` times (then OSError naming `advice`)."""
    fetched = False
    for _ in range(attempts):
        path, worked = fetch()
        fetched = fetched or worked
        if not is_entry(root, path):
            return Leased(path, fetched)
        if (held := lease(root, path)) is not None:
            return Leased(path, fetched, held)
    raise OSError(
        f"the artifact cache {root} evicted {path} {attempts} times while it was fetched: {advice}"
    )


def lease(root: Path, entry: Path) -> Lease | None:
    """A lease on `entry`, a complete entry of the cache at `root`; None if it was evicted
    meanwhile (fetch it again). Blocks only while an evictor is removing it."""
    key = entry.name
    path = _lease_path(root, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not (root / f"{key}{_MARKER}").exists() or not entry.is_dir():
            os.close(fd)
            return None
        os.utime(fd)  # the entry's last use
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    return Lease(fd, entry)


def is_entry(root: Path, path: Path) -> bool:
    """Whether `path` is an entry of the cache at `root` (not a directory used in place),
    complete or not: by its place, not its marker, so that an entry evicted right after its
    fetch is fetched again rather than taken for a directory used in place."""
    return path.parent == root and _KEY.fullmatch(path.name) is not None


def bound(root: Path, budget_bytes: int, warn: bool = True) -> Eviction:
    """Evict least recently used idle entries until the cache fits `budget_bytes` (see the
    module docstring). Logs what it evicted at INFO; a cache left over budget by entries in
    use at WARNING (`warn`; else DEBUG: the periodic pass would repeat it every time)."""
    with _exclusive(root / ".locks" / "evict.lock"):
        _sweep_leftovers(root, time.time())
        # Leases are probed only when something must go: the usual start fits.
        entries = scan(root, leases=False)
        if sum(e.size_bytes for e in entries) > budget_bytes:
            entries = scan(root)
        sizes = {e.key: e.size_bytes for e in entries}
        evicted = tuple(key for key in choose_evictions(entries, budget_bytes) if _evict(root, key))
        freed = sum(sizes[k] for k in evicted)
        if evicted:
            _drop_refs(root, set(evicted))
    total = sum(sizes.values()) - freed
    busy = sum(e.size_bytes for e in entries if e.in_use)
    result = Eviction(evicted, freed, total, budget_bytes, busy)
    if line := result.line(root):
        log.log(logging.INFO if evicted else logging.WARNING if warn else logging.DEBUG, line)
    return result


def scan(root: Path, leases: bool = True) -> list[CacheEntry]:
    """The complete entries of the cache at `root`, sized, with last use and in-use state
    (`leases=False`: sizes only, every entry idle and last used when it was built)."""
    entries = []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    for name in names:
        if not name.endswith(_MARKER) or name.startswith("."):
            continue
        key = name[: -len(_MARKER)]
        entry = root / key
        try:
            marked_s = (root / name).stat().st_mtime
            if not entry.is_dir():
                continue
            size = _size(root, key)
        except FileNotFoundError:  # evicted or rebuilt meanwhile by a process of its own
            continue
        used_s, in_use = _lease_state(root, key) if leases else (0.0, False)
        entries.append(CacheEntry(key, size, used_s or marked_s, in_use))
    return entries


def _lease_state(root: Path, key: str) -> tuple[float, bool]:
    path = _lease_path(root, key)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0.0, False  # never leased (a multi-model load): idle, last used when built
    try:
        used_s = os.fstat(fd).st_mtime
        return used_s, not _try_lock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)  # also drops the probe's lock


def _evict(root: Path, key: str) -> bool:
    """Remove one entry if nobody builds or leases it now; whether it was removed."""
    with build_lock(root, key) as free:
        if not free:
            return False
        held = _lease_path(root, key)
        held.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(held, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if not _try_lock(fd, fcntl.LOCK_EX):
                return False
            # The marker first: from here on a reader finds no entry and builds it anew.
            (root / f"{key}{_MARKER}").unlink(missing_ok=True)
            shutil.rmtree(root / key, ignore_errors=True)
            (root / ".sizes" / key).unlink(missing_ok=True)
            return True
        finally:
            os.close(fd)


@contextlib.contextmanager
def build_lock(root: Path, key: str, wait: bool = False) -> Iterator[bool]:
    """The build lock of `key` (`artifacts._Cache.locked`, the compiled tier's builds), taken
    without waiting unless `wait`: yields whether it is held."""
    (root / ".locks").mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".locks" / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if wait:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield wait or _try_lock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


def marker(root: Path, key: str) -> Path:
    """The file whose presence makes `<root>/<key>` a complete entry (its builder, holding
    the build lock, creates it last)."""
    return root / f"{key}{_MARKER}"


def _sweep_leftovers(root: Path, now_s: float) -> None:
    """Remove what crashed builders left (a scratch directory `.tmp-<key>-*` or an entry
    directory without its marker, when nobody holds the key's build lock; a download file
    untouched for `STALE_DOWNLOAD_S`): no reader can use them, yet they take disk."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return
    for name in names:
        path = root / name
        if name.startswith(".download-"):
            with contextlib.suppress(FileNotFoundError):
                if now_s - path.stat().st_mtime > STALE_DOWNLOAD_S:
                    path.unlink()
            continue
        scratch = name.startswith(".tmp-")
        key = name.split("-")[1] if scratch else name
        if not _KEY.fullmatch(key) or not path.is_dir():
            continue
        if not scratch and (root / f"{key}{_MARKER}").exists():
            continue  # a complete entry
        with build_lock(root, key) as free:
            # Checked again under the lock: a builder may have completed the entry meanwhile.
            if free and (scratch or not (root / f"{key}{_MARKER}").exists()):
                shutil.rmtree(path, ignore_errors=True)
                log.info("artifact cache %s: removed %s, left by a crashed build", root, name)


def _drop_refs(root: Path, evicted: set[str]) -> None:
    # S3 objects are found through `.refs/<ref>` (a file naming the key): drop those that
    # now point nowhere. A stale one would only cost a lookup miss; this keeps `.refs` small.
    refs = root / ".refs"
    with contextlib.suppress(FileNotFoundError):
        for ref in refs.iterdir():
            with contextlib.suppress(OSError):
                if ref.read_text().strip() in evicted:
                    ref.unlink()


def _size(root: Path, key: str) -> int:
    sizes = root / ".sizes"
    with contextlib.suppress(FileNotFoundError, ValueError):
        return int((sizes / key).read_text())
    total = 0
    for folder, _, files in os.walk(root / key):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_size
    sizes.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=sizes)
    with os.fdopen(fd, "w") as handle:
        handle.write(str(total))
    os.replace(tmp, sizes / key)
    return total


def _lease_path(root: Path, key: str) -> Path:
    return root / ".leases" / key


def _try_lock(fd: int, how: int) -> bool:
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
