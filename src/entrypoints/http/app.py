"""The application factory: routes, JSON errors, the body-size limit and request metrics."""

from __future__ import annotations

from fastapi import FastAPI

from chat_outbox.entrypoints.containers import ApiContainer
from chat_outbox.entrypoints.http import admin, dashboard, deps, errors, health, messages
from chat_outbox.entrypoints.http.dashboard import deps as dashboard_deps
from chat_outbox.entrypoints.http.middleware import BodySizeLimit, RequestMetrics


def create_app(container: ApiContainer) -> FastAPI:
    """An app over `container`, whose providers the routes' dependencies are wired to (the
    last app created in a process is the one they serve: `serve` makes one). Tests override
    the container's providers with fakes, before or after."""
    container.wire(modules=[deps, dashboard_deps])
    app = FastAPI(
        title="chat-outbox",
        version="1",
        summary="Record chat messages through a transactional outbox; read history back.",
        # Starlette's slash redirect builds its Location from the Host header, which the
        # client chooses: a trailing slash is a plain 404 instead.
        redirect_slashes=False,
    )
    app.include_router(messages.router)
    app.include_router(admin.router)
    app.include_router(health.router)
    errors.install(app)
    dashboard.install(app)  # after errors: its own handlers answer its pages in HTML
    settings = container.settings()
    # The last added runs first: every request is timed, 413s from the size limit included.
    app.add_middleware(BodySizeLimit, max_bytes=settings.http.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=container.core.metrics())
    return app
