"""Unpacking model archives safely: size, ratio and member limits, no path or link
escapes, no devices (split from `artifacts.py`, which fetches and caches)."""

from __future__ import annotations

import gzip
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelhost.errors import ArtifactError

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
