"""Where a transform job's inputs and outputs live: a local path, `file://`, or `s3://`.

`list_objects` names each input object by its path relative to the input location (as a
transform job names `<output>/<relative path>.out`), with a fingerprint (size and mtime, or
ETag and size) that changes whenever the bytes do; `fetch` gives a local file to read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelhost.errors import ArtifactError
from modelhost.store.s3 import S3Client, S3Object, parse_s3_url


@dataclass(frozen=True)
class ObjectRef:
    """One object: its path relative to the location, and what identifies its content."""

    rel: str
    fingerprint: str
    path: Path | None = None  # a local object
    s3: S3Object | None = None  # an S3 object (its ETag pins the bytes we download)


class Location:
    """A local directory or file, or an S3 prefix or object."""

    def __init__(self, url: str, label: str, s3_endpoint_url: str | None) -> None:
        self.url = url
        self.label = label
        self.s3: S3Client | None = None
        if url.startswith("s3://"):
            self.bucket, self.key = parse_s3_url(url, label)
            self.s3 = S3Client(s3_endpoint_url)
            self.path = Path()
        else:
            raw = unquote(urlsplit(url).path) if url.startswith("file://") else url
            self.path = Path(raw).expanduser()

    def list_objects(self) -> list[ObjectRef]:
        """Every object at the location, in relative-path order."""
        if self.s3 is not None:
            return [ObjectRef(rel, f"{o.etag}:{o.size}", s3=o) for rel, o in self._s3_objects()]
        if self.path.is_file():
            return [ObjectRef(self.path.name, _stat(self.path), path=self.path)]
        if not self.path.is_dir():
            raise ArtifactError(f"{self.label}: {self.url} does not exist")
        files = sorted(p for p in self.path.rglob("*") if p.is_file())
        return [ObjectRef(p.relative_to(self.path).as_posix(), _stat(p), path=p) for p in files]

    def _s3_objects(self) -> list[tuple[str, S3Object]]:
        assert self.s3 is not None
        if self.key and not self.key.endswith("/"):
            obj = self.s3.head(self.bucket, self.key, self.label)
            if obj is not None:
                return [(self.key.rsplit("/", 1)[-1], obj)]
        # As S3Prefix: every key starting with the prefix, named relative to its folder.
        folder = self.key.rsplit("/", 1)[0] + "/" if "/" in self.key else ""
        found = self.s3.list_objects(self.bucket, self.key, self.label)
        return [
            (o.key[len(folder) :], o) for o in found if not (o.key.endswith("/") and o.size == 0)
        ]

    def describe(self, rel: str) -> ObjectRef | None:
        """The object at `rel` below this location (an output location), or None."""
        if self.s3 is not None:
            obj = self.s3.head(self.bucket, self._s3_key(rel), self.label)
            return ObjectRef(rel, f"{obj.etag}:{obj.size}", s3=obj) if obj is not None else None
        path = self.path / rel
        return ObjectRef(rel, _stat(path), path=path) if path.is_file() else None

    def _s3_key(self, rel: str) -> str:
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return base + rel

    def where(self, rel: str) -> str:
        if self.s3 is not None:
            return f"s3://{self.bucket}/{self._s3_key(rel)}"
        return str(self.path) if self.path.is_file() else str(self.path / rel)

    @contextlib.contextmanager
    def fetch(self, ref: ObjectRef, target: Path) -> Iterator[Path]:
        """A local file holding `ref`'s bytes (downloaded to `target` if it is in S3)."""
        if ref.path is not None:
            yield ref.path
            return
        assert self.s3 is not None and ref.s3 is not None
        self.s3.download(self.bucket, ref.s3, target, self.label)
        try:
            yield target
        finally:
            target.unlink(missing_ok=True)


def _stat(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"
