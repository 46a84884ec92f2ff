"""The S3 side of the artifact store: objects and prefixes brought into the cache with boto3.

Every botocore failure leaves this module as an `ArtifactError` whose text says what to fix,
because that text becomes the FailureReason a user reads (DescribeEndpoint, the container log).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modelhost.errors import ArtifactError

_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class S3Object:
    """One object as S3 lists it; ETag and size identify its content without reading it."""

    key: str
    etag: str
    size: int


def parse_s3_url(url: str, label: str) -> tuple[str, str]:
    """Split `s3://bucket/key` into bucket and key (the key is taken verbatim, not unquoted)."""
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise ArtifactError(f"{label}: an s3:// URL needs a bucket (s3://bucket/key)")
    return bucket, key


class EntryCache(Protocol):
    """What the S3 backend needs from the artifact cache (`artifacts._Cache`)."""

    def fill(self, key: str, populate: Callable[[Path], object]) -> Path: ...
    def locked(self, key: str) -> AbstractContextManager[None]: ...
    def scratch_file(self) -> AbstractContextManager[Path]: ...
    def read_ref(self, ref: str) -> Path | None: ...
    def write_ref(self, ref: str, entry: Path) -> None: ...


# Caches one downloaded file, given (local path, file name, SHA-256 of its bytes).
PlaceFile = Callable[[Path, str, str], Path]


class S3Backend:
    """`s3://` locations for the artifact store: one object, or every object under a prefix.

    `mode` is the artifact store's: "auto" (a key that is not an object may be a prefix),
    "archive" or "file" (must be one object), "prefix" (always a prefix).
    """

    def __init__(
        self,
        endpoint_url: str | None,
        cache: EntryCache,
        region: str | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.client = S3Client(endpoint_url, region, credentials)
        self._cache = cache

    def fetch(self, url: str, mode: str, label: str, place_file: PlaceFile) -> Path:
        bucket, key = parse_s3_url(url, label)
        if mode == "prefix" or not key or key.endswith("/"):
            if mode in ("archive", "file"):
                raise ArtifactError(f"{label}: S3Object needs an object key, not a prefix")
            prefix = key if not key or key.endswith("/") else key + "/"
            return self._fetch_prefix(bucket, prefix, label)
        obj = self.client.head(bucket, key, label)
        if obj is None:
            # Listing tells a missing bucket (NoSuchBucket) from a missing key, and finds
            # the "key names a folder" case SageMaker handles as S3Prefix.
            under = self.client.list_objects(bucket, key + "/", label, limit=1)
            if under and mode == "auto":
                return self._fetch_prefix(bucket, key + "/", label)
            fix = "it is a prefix: use S3DataType S3Prefix" if under else "upload it or fix the key"
            raise ArtifactError(f"{label}: {url} does not exist as an object; {fix}")
        # The ETag names the bytes, so a repeated fetch costs one HEAD instead of a download.
        ref = sha256_text("s3-object", mode, bucket, key, obj.etag, str(obj.size))
        if (hit := self._cache.read_ref(ref)) is not None:
            return hit
        with self._cache.locked(ref):
            if (hit := self._cache.read_ref(ref)) is not None:
                return hit
            with self._cache.scratch_file() as scratch:
                digest = self.client.download(bucket, obj, scratch, label)
                entry = place_file(scratch, key.rsplit("/", 1)[-1], digest)
            self._cache.write_ref(ref, entry)
            return entry

    def _fetch_prefix(self, bucket: str, prefix: str, label: str) -> Path:
        files = self.client.list_files(bucket, prefix, label)
        # Keyed by the listing: ETag and size change whenever an object's bytes do.
        key = sha256_text("s3-prefix", *(f"{rel}\0{o.etag}\0{o.size}" for rel, o in files))

        def download_all(into: Path) -> None:
            for rel, obj in files:
                target = into / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download(bucket, obj, target, label)

        return self._cache.fill(key, download_all)


class S3Client:
    """A thread-safe, lazily created boto3 S3 client with actionable error messages."""

    def __init__(
        self,
        endpoint_url: str | None,
        region: str | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._region = region  # None: boto3's own lookup (AWS_REGION, config file)
        # (access key id, secret): given explicitly, e.g. to a Ray node fetching for the
        # gateway; None: boto3's own chain (environment, profile, instance role).
        self._credentials = credentials
        self._client: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        # boto3 clients are thread-safe once built, but building one is not (shared session
        # state), and importing boto3 costs ~0.3 s, so both happen once, on first use.
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                # S3-compatible servers (MinIO, Ceph, moto) answer on one host name, so
                # bucket-in-host addressing would fail there; AWS still accepts path style.
                s3_config = {"addressing_style": "path"} if self._endpoint_url else {}
                keys = self._credentials
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self._endpoint_url,
                    region_name=self._region,
                    aws_access_key_id=keys[0] if keys else None,
                    aws_secret_access_key=keys[1] if keys else None,
                    config=Config(s3=s3_config, retries={"mode": "standard", "max_attempts": 3}),
                )
            return self._client

    def head(self, bucket: str, key: str, label: str) -> S3Object | None:
        """The object at `key`, or None if there is none (the bucket may still be missing)."""
        try:
            answer = self._get().head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise self.error(exc, f"s3://{bucket}/{key}", label) from exc
        return S3Object(key, str(answer.get("ETag", "")), int(answer.get("ContentLength", 0)))

    def list_objects(
        self, bucket: str, prefix: str, label: str, limit: int | None = None
    ) -> list[S3Object]:
        """Objects whose key starts with `prefix`, in key order (at most `limit` of them)."""
        found: list[S3Object] = []
        try:
            pages = (
                self._get().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found.append(S3Object(item["Key"], str(item.get("ETag", "")), item["Size"]))
                    if limit is not None and len(found) >= limit:
                        return found
        except Exception as exc:
            raise self.error(exc, f"s3://{bucket}/{prefix}", label) from exc
        return found

    def list_files(self, bucket: str, prefix: str, label: str) -> list[tuple[str, S3Object]]:
        """Objects under `prefix` with their paths relative to it (SageMaker's S3Prefix).

        A key whose relative path could not be a plain file below the model directory is
        refused rather than skipped, so a model never loads with a file silently missing.
        """
        files: list[tuple[str, S3Object]] = []
        for obj in self.list_objects(bucket, prefix, label):
            rel = obj.key[len(prefix) :]
            if (not rel or rel.endswith("/")) and obj.size == 0:
                continue  # a "folder" placeholder made by consoles, not a model file
            if not rel or "\0" in rel or any(part in ("", ".", "..") for part in rel.split("/")):
                raise ArtifactError(
                    f"{label}: object key '{obj.key}' cannot become a file in the model "
                    f"directory (relative path '{rel}'); rename it so the path below "
                    f"s3://{bucket}/{prefix} has no empty, '.' or '..' parts"
                )
            files.append((rel, obj))
        if not files:
            raise ArtifactError(
                f"{label}: no objects under s3://{bucket}/{prefix}; upload the model files there"
            )
        return files

    def download(self, bucket: str, obj: S3Object, dest: Path, label: str) -> str:
        """Stream one object into `dest`; returns the SHA-256 of its bytes."""
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3://{bucket}/{obj.key}"
        digest = hashlib.sha256()
        written = 0
        try:
            # If-Match pins the bytes to the ETag the caller listed or cached under.
            extra = {"IfMatch": obj.etag} if obj.etag else {}
            answer = self._get().get_object(Bucket=bucket, Key=obj.key, **extra)
            with open(dest, "wb") as out:
                for chunk in answer["Body"].iter_chunks(_CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
        except (BotoCoreError, ClientError) as exc:
            # Before any OSError handling: botocore's timeouts are OSErrors too. What is left
            # (a local OSError) is disk trouble, which the store reports with the cache path.
            raise self.error(exc, where, label) from exc
        if written != obj.size:
            raise ArtifactError(
                f"{label}: download of {where} stopped after {written} of {obj.size} bytes; "
                "retry, and check the network path to the S3 endpoint"
            )
        return digest.hexdigest()

    def error(self, exc: Exception, where: str, label: str) -> ArtifactError:
        """Translate a boto3/botocore failure into what the user should change."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        bucket = where[len("s3://") :].split("/", 1)[0]
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return ArtifactError(
                f"{label}: no AWS credentials to read {where}; give the modelhost server "
                "credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an "
                "instance role)"
            )
        if isinstance(exc, EndpointConnectionError):
            return ArtifactError(
                f"{label}: cannot reach the S3 endpoint ({exc}); check MODELHOST_S3_ENDPOINT_URL "
                f"(now {self._endpoint_url or 'unset: AWS S3'}) and that the server is up"
            )
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = _status(exc)
            if code == "NoSuchBucket":
                return ArtifactError(
                    f"{label}: bucket '{bucket}' does not exist; create it or fix the bucket name"
                )
            if code in ("NoSuchKey", "NotFound") or status == 404:
                return ArtifactError(f"{label}: {where} does not exist; upload it or fix the key")
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
                return ArtifactError(
                    f"{label}: S3 rejected the server's credentials ({code}) reading {where}; "
                    "fix AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or the profile) it runs with"
                )
            if code in ("AccessDenied", "AllAccessDisabled", "Forbidden") or status == 403:
                return ArtifactError(
                    f"{label}: access denied to {where}; grant the server's credentials "
                    f"s3:GetObject and s3:ListBucket on bucket '{bucket}' (without ListBucket, "
                    "S3 also answers 403 for a key that does not exist)"
                )
            if code == "PreconditionFailed" or status == 412:
                return ArtifactError(f"{label}: {where} changed while it was read; retry")
            message = exc.response.get("Error", {}).get("Message", "")
            return ArtifactError(f"{label}: S3 answered {code or status} for {where}: {message}")
        if isinstance(exc, BotoCoreError):
            return ArtifactError(f"{label}: reading {where} failed: {exc}")
        return ArtifactError(f"{label}: reading {where} failed: {type(exc).__name__}: {exc}")


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def sha256_text(*fields: str) -> str:
    """A cache key from text fields (S3 keys may hold any bytes, hence surrogateescape)."""
    return hashlib.sha256("\n".join(fields).encode("utf-8", "surrogateescape")).hexdigest()


def upload_file(client: S3Client, path: Path, url: str, label: str) -> None:
    """Put the file at `path` as the object `url` (one PUT or a multipart upload that
    boto3 completes or aborts, so readers never see a partial object)."""
    bucket, key = parse_s3_url(url, label)
    try:
        client._get().upload_file(str(path), bucket, key)
    except Exception as exc:
        raise client.error(exc, url, label) from exc


def put_bytes(client: S3Client, url: str, data: bytes, label: str) -> None:
    """Put `data` as the object `url` in one PUT (readers see all of it or nothing)."""
    bucket, key = parse_s3_url(url, label)
    try:
        client._get().put_object(Bucket=bucket, Key=key, Body=data)
    except Exception as exc:
        raise client.error(exc, url, label) from exc
