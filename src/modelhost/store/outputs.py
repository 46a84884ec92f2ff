"""Small objects written and read at a user-given location: `s3://` or this machine.

Data capture files, baseline and monitoring outputs are small documents written whole;
a local file appears atomically (written beside, then renamed), an S3 object with one PUT.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

from modelhost.errors import ArtifactError
from modelhost.store.s3 import S3Client, S3Object, parse_s3_url, put_bytes


def local_path(url: str) -> Path:
    """The path of a `file://` URL or a plain path."""
    if url.startswith("file://"):
        return Path(unquote(urlparse(url).path))
    return Path(url).expanduser()


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p)])


class Locations:
    """Writes, reads and lists objects under `s3://` URLs or local paths."""

    def __init__(self, s3_endpoint_url: str | None) -> None:
        self.s3 = S3Client(s3_endpoint_url)

    def write(self, url: str, data: bytes, label: str) -> None:
        if url.startswith("s3://"):
            put_bytes(self.s3, url, data, label)
            return
        target = local_path(url)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:
            raise ArtifactError(f"{label}: cannot write {url}: {exc}") from exc

    def read(self, url: str, label: str) -> bytes:
        if not url.startswith("s3://"):
            try:
                return local_path(url).read_bytes()
            except OSError as exc:
                raise ArtifactError(f"{label}: cannot read {url}: {exc}") from exc
        bucket, key = parse_s3_url(url, label)
        try:
            answer = self.s3._get().get_object(Bucket=bucket, Key=key)
            data: bytes = answer["Body"].read()
        except Exception as exc:
            raise self.s3.error(exc, url, label) from exc
        return data

    def list(self, prefix: str, label: str) -> list[str]:
        """URLs of the objects under `prefix` (a folder or key prefix), sorted."""
        if prefix.startswith("s3://"):
            bucket, key = parse_s3_url(prefix, label)
            found: list[S3Object] = self.s3.list_objects(bucket, key, label)
            return sorted(f"s3://{bucket}/{o.key}" for o in found if not o.key.endswith("/"))
        path = local_path(prefix)
        if path.is_file():
            return [str(path)]
        if path.is_dir():
            # Dot files are writes in progress (`write` renames them into place).
            files = (p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            return sorted(str(p) for p in files)
        return []
