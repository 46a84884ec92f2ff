"""A DynamoDB-compatible server on loopback for tests: moto's threaded server.

moto keeps tables in process-wide backends, so tests should use unique table names.
Give clients dummy credentials (`TEST_ACCESS_KEY_ID`...) and the yielded `endpoint_url`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from modelhost.testing.s3 import local_s3_server


@contextmanager
def local_dynamodb_server() -> Iterator[str]:
    """Run moto's server (it answers every service, DynamoDB included); yields its URL."""
    with local_s3_server() as endpoint_url:
        yield endpoint_url
