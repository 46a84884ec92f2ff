"""An S3-compatible server on loopback for tests: moto's threaded server, one per context.

moto keeps its buckets in process-wide backends, so servers started in one process share
them; tests should use unique bucket names rather than expect an empty server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TEST_REGION = "us-east-1"
TEST_ACCESS_KEY_ID = "testing"
TEST_SECRET_ACCESS_KEY = "testing"


@contextmanager
def local_s3_server() -> Iterator[str]:
    """Run moto's S3 server on 127.0.0.1 and a free port; yields its endpoint URL.

    Nothing global is set (no environment variables): pass the URL as `endpoint_url`.
    """
    from moto.server import ThreadedMotoServer

    # Port 0 lets the kernel pick a free port atomically (no probe-then-bind race).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client(endpoint_url: str) -> Any:
    """A boto3 S3 client for `endpoint_url` with dummy credentials, in us-east-1."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=TEST_REGION,
        aws_access_key_id=TEST_ACCESS_KEY_ID,
        aws_secret_access_key=TEST_SECRET_ACCESS_KEY,
    )
