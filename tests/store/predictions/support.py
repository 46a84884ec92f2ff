"""Helpers for the prediction-store tests."""

from __future__ import annotations

import uuid

import pytest


def store_url(kind: str, request: pytest.FixtureRequest) -> str:
    if kind == "embedded":
        return "embedded"
    if kind == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    request.getfixturevalue("aws_env")
    endpoint: str = request.getfixturevalue("dynamodb_endpoint")
    return f"dynamodb://predictions-{uuid.uuid4().hex[:10]}?endpoint_url={endpoint}"
