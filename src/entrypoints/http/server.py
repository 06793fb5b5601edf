"""`chat-outbox serve`: uvicorn on the app, stopped gracefully by SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import socket
from collections.abc import Iterator

import structlog
import uvicorn

from chat_outbox.adapters.metrics import ListenFailed
from chat_outbox.adapters.sql import ensure_migrated
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.containers import ApiContainer, require_bus, resources
from chat_outbox.entrypoints.http.app import create_app
from chat_outbox.entrypoints.processes import stop_on_signals

log = structlog.get_logger(__name__)


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling, which re-raises the signal after shutdown
    (so SIGTERM would not exit 0); chat-outbox's handlers set should_exit instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server_for(app: object, host: str, port: int) -> ApiServer:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_config=None,  # uvicorn's loggers go through our structlog handler
        access_log=False,  # the request metrics count requests; no line per request
        lifespan="off",
        server_header=False,
    )
    return ApiServer(config)


def _listening(host: str, port: int) -> socket.socket:
    """Bind before uvicorn does: its own bind failure exits the process with no reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ListenFailed.on(host, port, error) from None
    return listener


async def serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.http_host
    port = settings.http_port if args.port is None else args.port
    # The readiness probe needs the bus's client: say so now, not on every probe.
    require_bus(settings.bus)
    async with resources(ApiContainer(settings=settings)) as container:
        await ensure_migrated(await container.core.engine.async_())
        server = server_for(create_app(container), host, port)
        listener = _listening(host, port)

        def stop() -> None:
            server.should_exit = True

        stop_on_signals(stop)
        log.info("api_starting", host=host, port=port, admin=bool(settings.admin_token))
        await server.serve(sockets=[listener])
        log.info("api_stopped")
    return 0
