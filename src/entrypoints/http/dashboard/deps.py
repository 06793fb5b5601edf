"""What the dashboard's routes depend on: its settings, the signed-in session, the reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.sql.insights import SqlInsights
from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.application.operate.insights import OutboxInsights
from chat_outbox.entrypoints.http.dashboard import session
from chat_outbox.entrypoints.http.dashboard.config import DashboardConfig, dashboard_config
from chat_outbox.entrypoints.http.dashboard.inputs import PageError
from chat_outbox.entrypoints.http.deps import Container, resolved

DISABLED = "the dashboard is disabled: set CHAT_OUTBOX_ADMIN_TOKEN to enable it"


async def html_errors() -> AsyncIterator[None]:
    """A database that is down answers the dashboard's pages with an HTML 503 page."""
    try:
        yield
    except StoreUnavailable:
        raise PageError(503, "the database is unavailable: try again shortly") from None


class LoginNeeded(Exception):
    """No valid session: a page sends the browser to the login form, anything else 401."""


def config(container: Container) -> DashboardConfig:
    found = dashboard_config(container.settings())
    if not found.admin_token:
        raise PageError(403, DISABLED)
    return found


Config = Annotated[DashboardConfig, Depends(config)]


def signed_in(request: Request, settings: Config) -> session.Session:
    found = session.verify(settings.admin_token, request.cookies.get(session.SESSION_COOKIE))
    revoked: session.RevokedSessions = request.app.state.dashboard_revoked
    if found is None or found in revoked:
        raise LoginNeeded
    # The templates put the CSRF token into every form of this session.
    request.state.dashboard_session = found
    request.state.dashboard_csrf = session.csrf_token(settings.admin_token, found)
    return found


SignedIn = Annotated[session.Session, Depends(signed_in)]


async def insights(container: Container) -> OutboxInsights:
    engine: AsyncEngine = await resolved(container.core.engine)
    return SqlInsights(engine)


Insights = Annotated[OutboxInsights, Depends(insights)]
