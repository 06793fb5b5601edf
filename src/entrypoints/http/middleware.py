"""ASGI middleware: refuse oversized bodies before parsing, and time every request."""

from __future__ import annotations

import json
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat_outbox.adapters.metrics import PrometheusMetrics


class BodySizeLimit:
    """413 for a body over `max_bytes`: at once from Content-Length, or as soon as a
    chunked body grows past it, so no oversized body is ever held in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _too_large(send, self.max_bytes)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # Raised inside the route's body read: FastAPI passes HTTPException through.
                raise HTTPException(413, _too_large_reason(self.max_bytes))
            return message

        await self.app(scope, limited, send)


def _too_large_reason(max_bytes: int) -> str:
    return f"request body is over the limit of {max_bytes} bytes"


async def _too_large(send: Send, max_bytes: int) -> None:
    body = json.dumps({"error": _too_large_reason(max_bytes)}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


UNMATCHED_ROUTE = "unmatched"
"""The route label of every request that matched no route (its raw path is the client's)."""


class RequestMetrics:
    """Counts and times requests by route template (not raw path: ids would explode the
    label set), and by method, unknown methods folded into one value by the metrics."""

    def __init__(self, app: ASGIApp, metrics: PrometheusMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if not isinstance(route, str):  # only a route of this app names a template
                route = UNMATCHED_ROUTE
            elapsed = time.perf_counter() - started
            self.metrics.http_request(scope["method"], route, status, elapsed)
