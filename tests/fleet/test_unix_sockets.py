"""The gateway → instance hop over Unix domain sockets: real processes on this machine."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from modelhost.fleet import sockets
from modelhost.fleet.http1 import HTTP1Pool, InstanceUnreachable
from modelhost.fleet.instance import Instance, LaunchSpec
from modelhost.fleet.manager import FleetManager
from modelhost.routing.table import (
    AddressKind,
    EndpointRoute,
    TcpAddress,
    UnixAddress,
    VariantRoute,
)
from modelhost.routing.wire import route_from_doc, route_to_doc
from modelhost.settings import Settings
from tests.support import XGBOOST_IMAGE, ChurnModel

USER_SERVER = """\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._answer(b"")

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(b"mine")

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ["SAGEMAKER_BIND_TO_PORT"])), Handler).serve_forever()
"""


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.integration
def test_a_builtin_instance_is_reached_over_its_unix_socket(
    tmp_path: Path, churn_model: ChurnModel
) -> None:
    home = tmp_path / "home"
    manager = FleetManager(Settings(home=home, instance_startup_timeout_s=60, zygote=False))
    container = {"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)}
    model = {"PrimaryContainer": container}
    row = ",".join(repr(float(v)) for v in churn_model.data.X[0]).encode()
    expected = float(churn_model.expected(churn_model.data.X[:1])[0])

    async def body() -> None:
        try:
            fleet = await manager.start_fleet("e", "v", "m", model, 1)
            (inst,) = fleet.serving()
            assert inst.address.kind is AddressKind.UNIX
            assert isinstance(inst.address, UnixAddress)
            path = inst.address.path
            assert Path(path).parent == home / "sockets"
            assert stat.S_ISSOCK(os.stat(path).st_mode)
            assert _mode(path) == 0o600 and _mode(home / "sockets") == 0o700
            csv = [(b"content-type", b"text/csv")]
            for address in (inst.address, inst.tcp_address):  # the port still serves too
                status, _, answer = await manager.client.http.request(
                    address, b"POST", b"/invocations", csv, row, 30
                )
                assert status == 200 and float(answer) == pytest.approx(expected)
            assert (await manager.client.ping(inst, 5)).status == 200
            await manager.stop_fleet(fleet, 0)
            assert not os.path.exists(path)
        finally:
            await manager.close()

    asyncio.run(body())


@pytest.mark.integration
def test_a_users_own_server_is_reached_over_tcp(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "server.py").write_text(USER_SERVER)
    manager = FleetManager(Settings(home=tmp_path / "home", instance_startup_timeout_s=60))
    image = f"command:{sys.executable} server.py"
    model = {"PrimaryContainer": {"Image": image, "ModelDataUrl": str(model_dir)}}

    async def body() -> None:
        try:
            fleet = await manager.start_fleet("e", "v", "m", model, 1)
            (inst,) = fleet.serving()
            assert inst.address.kind is AddressKind.TCP and inst.unix_path is None
            assert inst.address == TcpAddress("127.0.0.1", inst.port)
            status, _, answer = await manager.client.http.request(
                inst.address, b"POST", b"/invocations", [], b"x", 30
            )
            assert (status, answer) == (200, b"mine")
            assert "MH_INSTANCE_UNIX_SOCKET" not in fleet.spec.env
            await manager.stop_fleet(fleet, 0)
        finally:
            await manager.close()

    asyncio.run(body())


def _two_workers(
    tmp_path: Path, churn_model: ChurnModel, **environment: str
) -> tuple[FleetManager, dict[str, Any]]:
    """A fleet manager and the churn model's container with two workers per instance."""
    manager = FleetManager(Settings(home=tmp_path / "home", instance_startup_timeout_s=60))
    container = {
        "Image": XGBOOST_IMAGE,
        "ModelDataUrl": str(churn_model.artifact),
        "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", **environment},
    }
    return manager, container


@pytest.mark.integration
def test_an_instance_with_several_workers_shares_its_unix_socket(
    tmp_path: Path, churn_model: ChurnModel
) -> None:
    manager, container = _two_workers(tmp_path, churn_model)
    row = ",".join(repr(float(v)) for v in churn_model.data.X[0]).encode()
    expected = float(churn_model.expected(churn_model.data.X[:1])[0])

    async def body() -> None:
        try:
            fleet = await manager.start_fleet("e", "v", "m", {"PrimaryContainer": container}, 1)
            (inst,) = fleet.serving()
            assert inst.address.kind is AddressKind.UNIX and inst.unix_path is not None
            csv = [(b"content-type", b"text/csv")]
            status, _, answer = await manager.client.http.request(
                inst.address, b"POST", b"/invocations", csv, row, 30
            )
            assert status == 200 and float(answer) == pytest.approx(expected)
            await manager.stop_fleet(fleet, 0)
            assert not os.path.exists(inst.unix_path)
        finally:
            await manager.close()

    asyncio.run(body())


@pytest.mark.integration
def test_several_workers_on_uvicorn_keep_tcp_and_its_reuseport_balance(
    tmp_path: Path, churn_model: ChurnModel
) -> None:
    manager, container = _two_workers(tmp_path, churn_model, MH_INSTANCE_HTTP_SERVER="uvicorn")

    async def body() -> None:
        try:
            fleet = await manager.start_fleet("e", "v", "m", {"PrimaryContainer": container}, 1)
            (inst,) = fleet.serving()
            assert inst.address.kind is AddressKind.TCP and inst.unix_path is None
            assert not (tmp_path / "home" / "sockets").exists() or not any(
                (tmp_path / "home" / "sockets").iterdir()
            )
            await manager.stop_fleet(fleet, 0)
        finally:
            await manager.close()

    asyncio.run(body())


def test_the_provider_counts_workers_as_the_instance_does() -> None:
    assert sockets.workers({}) == 1
    assert sockets.workers({"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}) == 2
    # Batching off: one per core of the CPU share (container/config.py).
    assert sockets.workers({"MH_INSTANCE_BATCHING": "off", "MH_INSTANCE_CPUS": "0,1"}) == 2
    assert sockets.workers({"SAGEMAKER_MODEL_SERVER_WORKERS": "many"}) == 1
    # Several workers share the Unix socket, unless they run on uvicorn.
    assert sockets.unix_socket_ok({"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    uvicorn = {"MH_INSTANCE_HTTP_SERVER": "uvicorn"}
    assert sockets.unix_socket_ok(uvicorn)
    assert not sockets.unix_socket_ok({**uvicorn, "SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    assert not sockets.unix_socket_ok({"MH_INSTANCE_HTTP_SERVER": "nginx"})


def test_sockets_off_means_tcp_for_builtin_instances_too(tmp_path: Path) -> None:
    manager = FleetManager(Settings(home=tmp_path, instance_unix_sockets=False, zygote=False))
    assert getattr(manager.provider, "sockets", "missing") is None


def test_a_home_too_deep_for_a_socket_path_gets_a_private_temporary_directory(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    socket_dir = sockets.SocketDir(deep / "sockets")
    path = socket_dir.path_for("i-0123456789ab")
    assert len(os.fsencode(path)) <= sockets.MAX_PATH_BYTES
    assert not path.startswith(str(deep)) and _mode(Path(path).parent) == 0o700
    Path(path).touch()
    socket_dir.clear()  # what the gateway's last-resort cleanup does
    assert not Path(path).parent.exists()


def test_a_short_home_keeps_its_sockets_directory_private(tmp_path: Path) -> None:
    (tmp_path / "sockets").mkdir(mode=0o755)
    path = sockets.SocketDir(tmp_path / "sockets").path_for("i-0123456789ab")
    assert path == str(tmp_path / "sockets" / "i-0123456789ab.sock")
    assert _mode(tmp_path / "sockets") == 0o700


def test_other_gateways_get_the_tcp_address_of_an_instance_with_a_socket() -> None:
    spec = LaunchSpec("ep", "A", "m", [], {}, Path("/m"), Path("/logs"))
    inst = Instance("i-1", spec, 9001, 0, Path("/logs/i-1.log"), unix_path="/h/sockets/i-1.sock")
    assert inst.address == UnixAddress("/h/sockets/i-1.sock")
    # A str too: code that opens a socket path given as a string takes it as it is.
    assert isinstance(inst.address, str) and inst.address.path == "/h/sockets/i-1.sock"
    route = EndpointRoute("ep", (VariantRoute("A", 1.0, (inst,)),))
    back = route_from_doc(json.loads(json.dumps(route_to_doc(route))))
    (remote,) = back.variants[0].instances
    assert remote.address == TcpAddress("127.0.0.1", 9001)
    assert remote.address.kind is AddressKind.TCP


def test_a_file_system_without_sockets_gets_a_private_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sockets, "_can_bind", lambda _directory: False)
    path = sockets.SocketDir(tmp_path / "sockets").path_for("i-0123456789ab")
    assert not path.startswith(str(tmp_path)) and _mode(Path(path).parent) == 0o700
    Path(path).parent.rmdir()


def test_the_pool_keeps_one_connection_per_socket_path_and_sends_a_host(tmp_path: Path) -> None:
    seen: list[bytes] = []
    accepted: list[object] = []
    path = str(tmp_path / "i.sock")

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        try:
            while True:
                seen.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_unix_server(handler, path)
        pool = HTTP1Pool()
        try:
            # A UnixAddress, and a plain string path (what a caller may hold): one key.
            for address in (UnixAddress(path), path, UnixAddress(path)):
                assert await pool.request(address, b"GET", b"/ping", [], b"", 5) == (
                    200, {b"content-length": b"2"}, b"ok",
                )  # fmt: skip
            with pytest.raises(InstanceUnreachable, match="unix:"):
                await pool.request(UnixAddress(path + ".gone"), b"GET", b"/ping", [], b"", 5)
        finally:
            pool.close()
            server.close()
            await server.wait_closed()
            await asyncio.sleep(0.05)

    asyncio.run(main())
    assert len(accepted) == 1
    assert all(b"\r\nhost: localhost\r\n" in head for head in seen) and len(seen) == 3
