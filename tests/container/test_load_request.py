"""The body of a multi-model `POST /models` (`model_source.parse_load_request`), shared by
the built-in instance (container/multimodel.py) and the host agent before a user's server
(container/host_agent.py): pure, no process."""

from __future__ import annotations

import pytest

from modelhost.container.model_source import LOAD_BODY_RULE, LoadRefused, parse_load_request


def test_name_location_and_the_fields_a_users_server_gets() -> None:
    load = parse_load_request(
        b'{"model_name": "CA", "url": "s3://b/CA.tar.gz", "expect_use": true, "x": 1}'
    )
    assert (load.name, load.url, load.expect_use) == ("CA", "s3://b/CA.tar.gz", True)
    assert load.fields == {"model_name": "CA", "url": "s3://b/CA.tar.gz", "x": 1}


@pytest.mark.parametrize("flag", [b"false", b'"true"', b"1"])
def test_expect_use_is_only_a_json_true(flag: bytes) -> None:
    body = b'{"model_name": "CA", "url": "/m", "expect_use": ' + flag + b"}"
    assert parse_load_request(body).expect_use is False


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"CA"',
        b'{"model_name": "CA"}',
        b'{"url": "/m"}',
        b'{"model_name": "", "url": "/m"}',
        b'{"model_name": "CA", "url": 7}',
    ],
)
def test_anything_else_is_refused_with_400_naming_the_rule(body: bytes) -> None:
    with pytest.raises(LoadRefused) as refused:
        parse_load_request(body)
    assert (refused.value.status, refused.value.message) == (400, LOAD_BODY_RULE)
