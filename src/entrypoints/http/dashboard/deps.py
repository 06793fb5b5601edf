"""What the dashboard's routes depend on: its settings, the signed-in session, the login
state and the reads, injected from the app's container like the API's (http/deps.py)."""

from collections.abc import AsyncIterator
from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import Depends, Request

from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.application.operate.insights import OutboxInsights
from chat_outbox.entrypoints.containers import ApiContainer
from chat_outbox.entrypoints.http import deps as api
from chat_outbox.entrypoints.http.dashboard import session
from chat_outbox.entrypoints.http.dashboard.config import DashboardConfig, dashboard_config
from chat_outbox.entrypoints.http.dashboard.inputs import PageError

DISABLED = "the dashboard is disabled: set CHAT_OUTBOX_ADMIN_TOKEN to enable it"


async def html_errors() -> AsyncIterator[None]:
    """A database that is down answers the dashboard's pages with an HTML 503 page."""
    try:
        yield
    except StoreUnavailable:
        raise PageError(503, "the database is unavailable: try again shortly") from None


class LoginNeeded(Exception):
    """No valid session: a page sends the browser to the login form, anything else 401."""


def config(settings: api.Config) -> DashboardConfig:
    found = dashboard_config(settings)
    if not found.admin_token:
        raise PageError(403, DISABLED)
    return found


Config = Annotated[DashboardConfig, Depends(config)]


@inject
def revoked_sessions(
    found: Annotated[session.RevokedSessions, Depends(Provide[ApiContainer.revoked_sessions])],
) -> session.RevokedSessions:
    return found


@inject
def login_throttle(
    found: Annotated[session.LoginThrottle, Depends(Provide[ApiContainer.login_throttle])],
) -> session.LoginThrottle:
    return found


Revoked = Annotated[session.RevokedSessions, Depends(revoked_sessions)]
Throttle = Annotated[session.LoginThrottle, Depends(login_throttle)]


def signed_in(request: Request, settings: Config, revoked: Revoked) -> session.Session:
    found = session.verify(settings.admin_token, request.cookies.get(session.SESSION_COOKIE))
    if found is None or found in revoked:
        raise LoginNeeded
    # The templates put the CSRF token into every form of this session.
    request.state.dashboard_session = found
    request.state.dashboard_csrf = session.csrf_token(settings.admin_token, found)
    return found


SignedIn = Annotated[session.Session, Depends(signed_in)]


@inject
async def insights(
    found: Annotated[OutboxInsights, Depends(Provide[ApiContainer.insights])],
) -> OutboxInsights:
    return found


Insights = Annotated[OutboxInsights, Depends(insights)]
