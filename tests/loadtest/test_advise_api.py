"""`GET /api/advise` on a real server: the same advice as the CLI, errors as 400s."""

from __future__ import annotations

import json
import urllib.error

import pytest

from modelhost.testing.server import ModelhostServer
from tests.support import cli

pytestmark = pytest.mark.integration


def test_advise_over_the_native_api(server: ModelhostServer) -> None:
    got = server.call("GET", "/api/advise?Models=10&InstanceType=ml.c5.2xlarge&Prices=seeds-2021")
    assert got["Recommendation"]["Option"] == "multi-model"
    assert got["Recommendation"]["MonthlyCost"] == pytest.approx(343, abs=0.5)
    assert got["Prices"]["Name"] == "seeds-2021"
    assert server.call("GET", "/api/advise")["Prices"]["Name"] == "us-east-1-2024"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("Live=perhaps", "Live must be true or false"),
        ("Prices=/etc/passwd", "Prices must be one of"),
        ("Nope=1", "unknown member"),
    ],
)
def test_bad_advice_requests_are_400s(server: ModelhostServer, query: str, message: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        server.call("GET", f"/api/advise?{query}")
    assert info.value.code == 400
    body = json.loads(info.value.read())
    assert body["__type"] == "ValidationException" and message in body["Message"]


def test_cli_with_a_url_asks_the_server(server: ModelhostServer) -> None:
    args = ["--models", "10", "--instance-type", "ml.c5.2xlarge", "--no-cold-start"]
    done = cli(server, "advise", *args, "--prices", "seeds-2021")
    assert done.returncode == 0, done.stderr
    assert "recommended: multi-model, $342.72/month on 1 × ml.c5.2xlarge" in done.stdout
