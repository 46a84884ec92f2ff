"""An instance sees an explicit environment, never the gateway's (it may hold credentials)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV, deploy, unique

pytestmark = pytest.mark.integration

# A user's own server that answers every invocation with its environment.
ENV_SERVER = """
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def _answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._answer(200 if self.path == "/ping" else 404, b"{}")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(200, json.dumps(dict(os.environ)).encode())

    def log_message(self, *args):
        pass

port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

POISON = {
    "AWS_SECRET_ACCESS_KEY": "poison",
    "AWS_ACCESS_KEY_ID": "poison",
    "MODELHOST_SECRET_ACCESS_KEY": "poison",
    "MODELHOST_DATABASE_URL_PASSWORD": "poison",
    "SECRET_X": "1",
}


@pytest.fixture(scope="module")
def poisoned_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    home = tmp_path_factory.mktemp("poisoned-home")
    with ModelhostServer(home, env={**FAST_ENV, **POISON, "LC_TEST_LOCALE": "kept"}) as srv:
        yield srv


def _invoke_env(server: ModelhostServer, tmp_path: Path, environment: dict[str, str]) -> dict:
    (tmp_path / "env_server.py").write_text(ENV_SERVER)
    sm, rt = server.clients()
    name = unique("envcheck")
    image = f"command:{sys.executable} env_server.py"
    deploy(sm, name, str(tmp_path), image=image, environment=environment)
    try:
        answer = rt.invoke_endpoint(EndpointName=name, Body=b"{}", ContentType="application/json")
        return dict(json.loads(answer["Body"].read()))
    finally:
        sm.delete_endpoint(EndpointName=name)


def test_instance_sees_none_of_a_poisoned_gateway_environment(
    poisoned_server: ModelhostServer, tmp_path: Path
) -> None:
    env = _invoke_env(poisoned_server, tmp_path, {"MY_SETTING": "from-the-model"})
    assert not set(POISON) & set(env), sorted(env)
    assert "poison" not in json.dumps(env)
    assert not [name for name in env if name.startswith("MODELHOST_")], sorted(env)
    # What is explicit still arrives: the model's Environment, the contract's variables,
    # and what the instance needs to run the gateway's Python.
    assert env["MY_SETTING"] == "from-the-model"
    assert env["SAGEMAKER_BIND_TO_PORT"].isdigit() and env["MH_INSTANCE_ID"].startswith("i-")
    assert env["PATH"] and env["LC_TEST_LOCALE"] == "kept"
