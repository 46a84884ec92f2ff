"""Reading an async request's input and writing its output or failure, exactly once.

Locations are `s3://` (any S3-compatible store, through the artifact store's client) or
local (`file://` URLs and plain paths), as for transform jobs. An output appears whole or
not at all (a local temp file hard-linked into place, or one S3 PUT), and never twice: a
location that already holds an object is left alone, so a request re-run after its worker
died finds the first run's answer instead of writing a second one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

from modelhost.errors import ArtifactError
from modelhost.store.s3 import S3Client, S3Object, parse_s3_url, put_bytes


def _local(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri).expanduser()


class Payloads:
    """Input reads and write-once output writes for async requests."""

    def __init__(self, s3_endpoint_url: str | None, scratch: Path) -> None:
        self.s3 = S3Client(s3_endpoint_url)
        self.scratch = scratch

    def read(self, url: str) -> bytes:
        """The bytes at `url`; ArtifactError (RequestDownloadFailures) if unreadable."""
        label = "InputLocation"
        if not url.startswith("s3://"):
            try:
                return _local(url).read_bytes()
            except OSError as exc:
                raise ArtifactError(f"{label}: cannot read {url}: {exc}") from exc
        bucket, key = parse_s3_url(url, label)
        head = self.s3.head(bucket, key, label)
        if head is None:
            raise ArtifactError(f"{label}: {url} does not exist")
        self.scratch.mkdir(parents=True, exist_ok=True)
        dest = self.scratch / f".download-{uuid.uuid4().hex}"
        try:
            self.s3.download(bucket, S3Object(key, head.etag, head.size), dest, label)
            return dest.read_bytes()
        finally:
            dest.unlink(missing_ok=True)

    def exists(self, url: str) -> bool:
        if url.startswith("s3://"):
            bucket, key = parse_s3_url(url, "OutputLocation")
            return self.s3.head(bucket, key, "OutputLocation") is not None
        return _local(url).exists()

    def write_once(self, url: str, data: bytes, check: bool = True) -> bool:
        """Write `data` at `url` unless something is there; True if this call wrote it.
        On S3, `check=False` skips the HEAD (the caller knows nothing wrote it before)."""
        if url.startswith("s3://"):
            if check and self.exists(url):
                return False
            put_bytes(self.s3, url, data, "OutputLocation")
            return True
        target = _local(url)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            try:
                # link() fails if the name exists: the first complete write wins, atomically.
                os.link(tmp, target)
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise ArtifactError(f"OutputLocation: cannot write {url}: {exc}") from exc
        return True
