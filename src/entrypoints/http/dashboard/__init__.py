"""The operator dashboard under /admin: server-rendered pages over the outbox, behind a
login with the admin token."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chat_outbox.entrypoints.http.dashboard import actions, views
from chat_outbox.entrypoints.http.dashboard.deps import LoginNeeded
from chat_outbox.entrypoints.http.dashboard.inputs import PageError
from chat_outbox.entrypoints.http.dashboard.render import SECURITY_HEADERS, error_page

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Mount the dashboard's routes and the handlers that answer them with HTML pages."""
    app.include_router(views.router)
    app.include_router(actions.router)
    app.add_exception_handler(PageError, _page_error)  # type: ignore[arg-type]
    app.add_exception_handler(LoginNeeded, _login_needed)


async def _page_error(request: Request, error: PageError) -> HTMLResponse:
    return error_page(request, error)


async def _login_needed(request: Request, error: Exception) -> Response:
    if request.method in ("GET", "HEAD") and not request.url.path.startswith("/admin/rows"):
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = "/admin/login?" + urlencode({"next": wanted})
        return RedirectResponse(target, 303, headers=SECURITY_HEADERS)
    return error_page(request, PageError(401, "log in first: your session is missing or expired"))
