"""The dashboard's actions: log in and out, and requeue dead rows after a confirmation.
Every form that changes state carries the session's CSRF token."""

from __future__ import annotations

import io
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chat_outbox.application.operate import operations
from chat_outbox.application.operate.insights import DeadQuery
from chat_outbox.application.ports import DeadSelector
from chat_outbox.domain import OutboxStatus
from chat_outbox.entrypoints.audit import audited
from chat_outbox.entrypoints.http.dashboard import inputs, session
from chat_outbox.entrypoints.http.dashboard.deps import (
    Config,
    Insights,
    Revoked,
    SignedIn,
    Throttle,
    html_errors,
)
from chat_outbox.entrypoints.http.dashboard.inputs import MAX_WATCHED, PageError
from chat_outbox.entrypoints.http.dashboard.render import SECURITY_HEADERS, page
from chat_outbox.entrypoints.http.deps import Now, Uow

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(html_errors)])
DASHBOARD_USER = "dashboard"
"""The audit lines' user: the one shared admin token names nobody, so the door it used."""
CONFIRM_SHOWN = 50
MAX_NEXT_CHARS = 500


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def safe_next(raw: str | None) -> str:
    """Where to go after logging in: a dashboard path on this site, or the overview."""
    if not raw or len(raw) > MAX_NEXT_CHARS or not (raw.isascii() and raw.isprintable()):
        return "/admin"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or "\\" in raw or not raw.startswith("/admin"):
        return "/admin"
    return raw


def _cookie(response: Response, request: Request, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path=session.COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=session.secure_cookie(request.url.scheme, request.url.hostname, client_of(request)),
    )


def _login_form(
    request: Request, status: int = 200, failed: str | None = None, go_to: str | None = None
) -> HTMLResponse:
    """The form; `go_to` is where a successful login goes (the query's on a GET, the posted
    form's when a failed login shows the form again)."""
    nonce = session.login_nonce()
    wanted = request.query_params.get("next") if go_to is None else go_to
    response = page(
        request, "login.html", status, nonce=nonce, next=safe_next(wanted), failed=failed
    )
    _cookie(response, request, session.LOGIN_COOKIE, nonce, session.LOGIN_FORM_SECONDS)
    return response


@router.get("/login")
async def login_form(request: Request, _: Config) -> HTMLResponse:
    return _login_form(request)


@router.post("/login")
async def login(request: Request, settings: Config, throttle: Throttle) -> Response:
    fields = inputs.form_fields(await request.body())
    client = client_of(request)
    wanted = fields.get("next", "")
    if throttle.blocked(client):
        return _login_form(request, 429, "Too many failed logins: wait a minute and retry.", wanted)
    if not session.nonce_ok(request.cookies.get(session.LOGIN_COOKIE), fields.get("nonce")):
        return _login_form(request, 400, "The form expired: enter the token again.", wanted)
    if not session.token_ok(settings.admin_token, fields.get("token")):
        throttle.failed(client)
        return _login_form(request, 401, "That token was not accepted.", wanted)
    cookie, _ = session.issue(settings.admin_token)
    response = RedirectResponse(safe_next(fields.get("next")), 303, headers=SECURITY_HEADERS)
    _cookie(response, request, session.SESSION_COOKIE, cookie, session.SESSION_SECONDS)
    response.delete_cookie(session.LOGIN_COOKIE, path=session.COOKIE_PATH)
    return response


async def _checked_form(
    request: Request, settings: Config, signed: session.Session
) -> dict[str, str]:
    fields = inputs.form_fields(await request.body())
    if not session.csrf_ok(settings.admin_token, signed, fields.get("csrf")):
        raise PageError(403, "the form's CSRF token is missing or wrong: reload the page")
    return fields


@router.post("/logout")
async def logout(
    request: Request, settings: Config, signed: SignedIn, revoked: Revoked
) -> Response:
    await _checked_form(request, settings, signed)
    # Deleting the cookie is not enough: a copy of it would stay valid until it expires.
    revoked.revoke(signed)
    response = RedirectResponse("/admin/login", 303, headers=SECURITY_HEADERS)
    response.delete_cookie(session.SESSION_COOKIE, path=session.COOKIE_PATH)
    return response


def requeue_selector(fields: dict[str, str]) -> DeadSelector:
    """Exactly one of an outbox id, a conversation, or all."""
    chosen = [name for name in ("id", "conversation", "all") if fields.get(name)]
    if len(chosen) != 1:
        raise PageError(400, "requeue exactly one of: an outbox id, a conversation, or all")
    if chosen == ["id"]:
        return DeadSelector(outbox_id=inputs.outbox_id(fields["id"]))
    if chosen == ["conversation"]:
        return DeadSelector(conversation_id=inputs.conversation_id(fields["conversation"]))
    if fields["all"] != "1":
        raise PageError(400, "all must be 1")
    return DeadSelector()


def as_query(selector: DeadSelector) -> DeadQuery:
    return DeadQuery(conversation_id=selector.conversation_id)


@router.get("/dead/requeue")
async def confirm_requeue(request: Request, _: SignedIn, uow: Uow, reads: Insights) -> HTMLResponse:
    """What a requeue would move, and the form that does it."""
    selector = requeue_selector(dict(request.query_params))
    if selector.outbox_id is not None:
        found = await reads.messages([selector.outbox_id])
        rows = [m for m in found if m.status is OutboxStatus.DEAD]
    else:
        rows = await reads.dead(as_query(selector), CONFIRM_SHOWN + 1)
    return page(
        request,
        "confirm.html",
        selector=selector,
        described=selector.describe(),
        rows=rows[:CONFIRM_SHOWN],
        more=len(rows) > CONFIRM_SHOWN,
    )


@router.post("/dead/requeue")
async def requeue(
    request: Request, settings: Config, signed: SignedIn, uow: Uow, clock: Now, reads: Insights
) -> Response:
    """Requeue, audited, then show the dead page watching the moved rows."""
    selector = requeue_selector(await _checked_form(request, settings, signed))
    if selector.outbox_id is not None:
        watched = [selector.outbox_id]
    else:
        watched = [m.id for m in await reads.dead(as_query(selector), MAX_WATCHED)]
    with audited(
        "dead_requeue", selector.describe(), io.StringIO(), user=DASHBOARD_USER
    ) as progress:
        moved = await operations.requeue_dead(uow, clock, selector, progress=progress)
    target = "/admin/dead?" + urlencode(
        {"requeued": moved, "watch": ",".join(str(i) for i in watched)}
    )
    return RedirectResponse(target, 303, headers=SECURITY_HEADERS)
