"""Helpers for the artifact-store tests: archives built entry by entry."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

# One archive entry: (kind, name, payload) where payload is the file bytes for "file",
# the link target for "symlink"/"hardlink", and unused for "dir"/"fifo".
Entry = tuple[str, str, bytes | str | None]


TarBuilder = Callable[..., Path]


def tar_bytes(entries: list[Entry], compress: bool = True) -> bytes:
    """A tar (gzip-compressed unless told otherwise) holding exactly `entries`, in order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as tar:
        for kind, name, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = payload if isinstance(payload, bytes) else b""
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            info.mode = 0o755 if kind == "dir" else 0o644
            if isinstance(payload, str):
                info.linkname = payload
            tar.addfile(info)
    return buffer.getvalue()
