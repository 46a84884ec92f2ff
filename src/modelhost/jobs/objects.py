"""Where a transform job's records come from and where its outputs go.

Inputs: an S3Prefix (every object whose key starts with the prefix) or a ManifestFile (a
JSON array: `{"prefix": ...}` then keys relative to it), on S3 (`s3://`), or on this
machine (a path or `file://`). Each object's output is `<S3OutputPath>/<relative
name>.out`, the relative name being the key below the prefix's last `/`, so sub-folders
are kept. Outputs appear atomically: a rename on local disks, one completed upload on S3.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from modelhost.errors import ArtifactError
from modelhost.store.s3 import S3Client, S3Object, parse_s3_url, upload_file

_LABEL = "TransformInput"


@dataclass(frozen=True)
class InputObject:
    """One input object: `url` is an `s3://` URL or a local path; `rel` names its output."""

    url: str
    rel: str
    size: int


def _local(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri).expanduser()


def _base(prefix: str) -> str:
    return prefix[: prefix.rfind("/") + 1]


class ObjectIO:
    """Lists, reads and writes job objects; S3 through the artifact store's client."""

    def __init__(self, s3_endpoint_url: str | None) -> None:
        self.s3 = S3Client(s3_endpoint_url)

    # --- inputs ---------------------------------------------------------------------

    def list_inputs(self, data_type: str, uri: str) -> list[InputObject]:
        if data_type == "ManifestFile":
            return self._manifest(uri)
        found = self._prefix(uri)
        if not found:
            raise ArtifactError(f"{_LABEL}: no input objects under {uri}")
        return found

    def _prefix(self, uri: str) -> list[InputObject]:
        if uri.startswith("s3://"):
            bucket, prefix = parse_s3_url(uri, _LABEL)
            base = _base(prefix)
            return [
                InputObject(f"s3://{bucket}/{o.key}", o.key[len(base) :], o.size)
                for o in self.s3.list_objects(bucket, prefix, _LABEL)
                if not (o.key.endswith("/") and o.size == 0)
            ]
        path = _local(uri)
        if path.is_file():
            return [InputObject(str(path), path.name, path.stat().st_size)]
        if path.is_dir():
            root, files = path, sorted(p for p in path.rglob("*") if p.is_file())
        elif path.parent.is_dir():
            # A key prefix: names in the parent that start with it, and whatever is below
            # the matching folders (only those are walked).
            root, files = path.parent, []
            for entry in path.parent.iterdir():
                if entry.name.startswith(path.name):
                    files += [entry] if entry.is_file() else [p for p in entry.rglob("*")]
            files = sorted(p for p in files if p.is_file())
        else:
            return []
        return [InputObject(str(p), str(p.relative_to(root)), p.stat().st_size) for p in files]

    def _manifest(self, uri: str) -> list[InputObject]:
        try:
            doc = json.loads(self._read_url(uri))
        except ValueError as exc:
            raise ArtifactError(f"{_LABEL}: the manifest {uri} is not JSON: {exc}") from exc
        if (
            not isinstance(doc, list)
            or not doc
            or not isinstance(doc[0], dict)
            or not isinstance(doc[0].get("prefix"), str)
            or not all(isinstance(k, str) for k in doc[1:])
        ):
            raise ArtifactError(
                f'{_LABEL}: the manifest {uri} must be a JSON array: {{"prefix": "..."}} '
                "then the object keys relative to it"
            )
        prefix = doc[0]["prefix"]
        out = []
        for key in doc[1:]:
            url = prefix + key if prefix.endswith("/") or not prefix else f"{prefix}/{key}"
            out.append(InputObject(url, key, -1))
        if not out:
            raise ArtifactError(f"{_LABEL}: the manifest {uri} lists no objects")
        return out

    def _read_url(self, url: str, scratch: Path | None = None) -> bytes:
        if not url.startswith("s3://"):
            try:
                return _local(url).read_bytes()
            except OSError as exc:
                raise ArtifactError(f"{_LABEL}: cannot read {url}: {exc}") from exc
        bucket, key = parse_s3_url(url, _LABEL)
        head = self.s3.head(bucket, key, _LABEL)
        if head is None:
            raise ArtifactError(f"{_LABEL}: {url} does not exist")
        dest = (scratch or Path("/tmp")) / f".download-{uuid.uuid4().hex}"
        try:
            self.s3.download(bucket, S3Object(key, head.etag, head.size), dest, _LABEL)
            return dest.read_bytes()
        finally:
            dest.unlink(missing_ok=True)

    def read(self, obj: InputObject, gzipped: bool, scratch: Path) -> bytes:
        data = self._read_url(obj.url, scratch)
        if gzipped:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise ArtifactError(
                    f"{_LABEL}: {obj.url} is not valid gzip (CompressionType Gzip): {exc}"
                ) from exc
        return data

    # --- outputs --------------------------------------------------------------------

    def write_output(self, output_path: str, rel: str, parts: Iterable[Path], scratch: Path) -> str:
        """Concatenate `parts` into `<output_path>/<rel>.out` atomically; returns its URL."""
        name = rel + ".out"
        if output_path.startswith("s3://"):
            url = output_path.rstrip("/") + "/" + name
            tmp = scratch / f".assemble-{uuid.uuid4().hex}"
            try:
                _concat(parts, tmp)
                upload_file(self.s3, tmp, url, "TransformOutput")
            finally:
                tmp.unlink(missing_ok=True)
            return url
        target = _local(output_path) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            _concat(parts, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return str(target)


def _concat(parts: Iterable[Path], dest: Path) -> None:
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
