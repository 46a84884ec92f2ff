"""Run the gateway with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from modelhost.gateway.app import Gateway
from modelhost.settings import Settings


def serve(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = Gateway(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        # Clients (boto3) keep connections open between calls; don't cut them at 5 s.
        timeout_keep_alive=75,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )
