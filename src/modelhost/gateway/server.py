"""Run the gateway with uvicorn."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import socket

import uvicorn

from modelhost.container.http_protocol import one_write
from modelhost.errors import UnsafeConfiguration
from modelhost.gateway.app import Gateway
from modelhost.gateway.fastpath import FastInvoke, gateway_protocol
from modelhost.gateway.http_limits import bounded_protocol
from modelhost.gateway.uvicorn_internals import fast_path_usable
from modelhost.settings import Settings

MIN_METRICS_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """Whether every address `host` resolves to is a loopback address."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_safe(settings: Settings) -> None:
    """Refuse to serve an unauthenticated API beyond this machine, half-configured TLS, or
    a guessable metrics token."""
    if not settings.auth_enabled and not is_loopback(settings.host):
        raise UnsafeConfiguration(
            f"refusing to listen on {settings.host} with authentication off: anyone on the "
            "network could deploy code. Turn MODELHOST_AUTH_ENABLED back on, or listen on "
            "127.0.0.1."
        )
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise UnsafeConfiguration("TLS needs both tls_cert_file and tls_key_file.")
    token = settings.metrics_token
    if token is not None and len(token.get_secret_value()) < MIN_METRICS_TOKEN_CHARS:
        raise UnsafeConfiguration(
            f"metrics_token must be at least {MIN_METRICS_TOKEN_CHARS} characters (it reads "
            "/metrics without a signature); make one with `openssl rand -hex 32`."
        )


def serve(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    check_safe(settings)
    app = Gateway(settings)
    # Plain InvokeEndpoint requests, served below ASGI by the server's protocol.
    fast = FastInvoke(settings, app.runtime_api, app.guard, app.routes.leader_serving)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        # Clients (boto3) keep connections open between calls; don't cut them at 5 s.
        timeout_keep_alive=math.ceil(settings.http_keepalive_s),  # uvicorn takes whole seconds
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        ssl_certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
        ssl_keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
        http=http_protocol(settings, fast),
        limit_concurrency=settings.max_concurrency,
    )


def http_protocol(settings: Settings, fast: FastInvoke) -> type[asyncio.Protocol]:
    """The gateway's protocol class for uvicorn. The request head is capped while it
    arrives (not only once parsed; the guard enforces max_header_bytes as well), heads and
    bodies that dribble in are cut off (gateway/http_limits.py), and small responses go out
    in one write (container/http_protocol.py). Plain InvokeEndpoint requests are served by
    the protocol itself (gateway/fastpath.py) when `http_fast_path` is on and this uvicorn
    has the internals the fast path uses (checked here, once: gateway/uvicorn_internals.py);
    otherwise every request takes the ASGI path, with uvicorn's own request handling."""
    head_bytes = settings.max_header_bytes + 8192
    timeouts_s = (settings.http_header_timeout_s, settings.http_body_timeout_s)
    if settings.http_fast_path and fast_path_usable():
        return one_write(gateway_protocol(fast, head_bytes, *timeouts_s))
    return one_write(bounded_protocol(head_bytes, *timeouts_s))
