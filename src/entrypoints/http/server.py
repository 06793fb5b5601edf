"""`chat-outbox serve`: uvicorn on the app, stopped gracefully by SIGINT/SIGTERM, with
time limits on slow clients and a ceiling on connections."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
from collections.abc import Iterator

import h11
import structlog
import uvicorn
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from chat_outbox.adapters.metrics import ListenFailed
from chat_outbox.adapters.sql import ensure_migrated
from chat_outbox.entrypoints.bus_clients import require_bus
from chat_outbox.entrypoints.config import PREFIX, ConfigError, Settings
from chat_outbox.entrypoints.containers import ApiContainer, provided, resources
from chat_outbox.entrypoints.http.app import create_app
from chat_outbox.entrypoints.http.auth import authenticator_of
from chat_outbox.entrypoints.http.loopback import is_loopback
from chat_outbox.entrypoints.processes import stop_on_signals

log = structlog.get_logger(__name__)


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling, which re-raises the signal after shutdown
    (so SIGTERM would not exit 0); chat-outbox's handlers set should_exit instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HeaderTimeout(H11Protocol):
    """h11 with a deadline for each request's headers: uvicorn has none, so a client
    sending a byte now and then would hold its connection forever."""

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._headers_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_headers()  # the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._headers_arrived()
        self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _headers_arrived(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class BodyTimeout:
    """408 when the request body stops arriving for `seconds`; reads after the body (a
    wait for the client to disconnect) are not limited."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except TimeoutError:
                # Raised inside the route's body read, where the app turns it into JSON;
                # Connection: close, as the rest of the body may still arrive on it.
                raise HTTPException(
                    408, "request body not received in time", {"Connection": "close"}
                ) from None
            body_done = not message.get("more_body", False)
            return message

        await self.app(scope, timed, send)


def server_for(app: object, host: str, port: int, settings: Settings | None = None) -> ApiServer:
    limits = settings or Settings()
    protocol = type(
        "TimedH11Protocol", (HeaderTimeout,), {"header_timeout": limits.http.header_timeout_seconds}
    )
    config = uvicorn.Config(
        BodyTimeout(app, limits.http.body_timeout_seconds),  # type: ignore[arg-type]
        host=host,
        port=port,
        log_config=None,  # uvicorn's loggers go through our structlog handler
        access_log=False,  # the request metrics count requests; no line per request
        lifespan="off",
        server_header=False,
        http=protocol,
        # Typed int, but uvicorn only hands it to call_later, which takes any seconds.
        timeout_keep_alive=limits.http.keep_alive_seconds,  # type: ignore[arg-type]
        limit_concurrency=limits.http.max_connections,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    return ApiServer(config)


MAX_HEADER_BYTES = 16 * 1024
"""The request line and headers together; larger ones are a 431-like close by h11."""


def check_exposure(host: str, settings: Settings, insecure_no_auth: bool) -> None:
    """Refuse to serve the message routes without authentication beyond loopback."""
    if settings.http.auth_enabled or insecure_no_auth or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to serve on {host} without authentication: set "
        f"{PREFIX}AUTH_JWT_SECRET or {PREFIX}AUTH_JWT_PUBLIC_KEY_FILE, "
        "or pass --insecure-no-auth"
    )


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
    host = args.host or settings.http.host
    port = settings.http.port if args.port is None else args.port
    check_exposure(host, settings, bool(getattr(args, "insecure_no_auth", False)))
    authenticator_of(settings)  # a bad key file stops the start, not the first request
    if not settings.http.auth_enabled and not is_loopback(host):
        log.warning("api_without_auth", host=host, reason="--insecure-no-auth")
    # The readiness probe needs the bus's client: say so now, not on every probe.
    require_bus(settings.core.bus)
    async with resources(ApiContainer(settings=settings)) as container:
        await ensure_migrated(await provided(container.core.engine))
        server = server_for(create_app(container), host, port, settings)
        listener = _listening(host, port)

        def stop() -> None:
            server.should_exit = True

        stop_on_signals(stop)
        log.info(
            "api_starting",
            host=host,
            port=port,
            admin=bool(settings.http.admin_token),
            auth=settings.http.auth_enabled,
        )
        await server.serve(sockets=[listener])
        log.info("api_stopped")
    return 0
