"""Pages from the Jinja2 templates (autoescaped), with the headers every dashboard answer
carries: a strict Content-Security-Policy, no caching, no framing, no referrer."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from chat_outbox.entrypoints.http.dashboard.inputs import PageError

SECURITY_HEADERS = {
    # No inline script or style at all: a payload that slipped past escaping cannot run.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
MAX_SHOWN_ERROR_CHARS = 4000


def _moment(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(value: timedelta | float | None) -> str:
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    sign, seconds = ("−" if seconds < 0 else ""), abs(seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{sign}{seconds:.1f} s"
    if seconds < 7200:
        return f"{sign}{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{sign}{seconds / 3600:.1f} h"
    return f"{sign}{seconds / 86400:.1f} d"


def _chat_text(payload: str) -> str:
    """The chat text of an outbox payload, or the raw payload when it is not one."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):  # deeply nested JSON overflows the parser's stack
        return payload
    message = document.get("message") if isinstance(document, dict) else None
    return message if isinstance(message, str) else payload


def _clip(text: str | None, most: int = MAX_SHOWN_ERROR_CHARS) -> str:
    if text is None:
        return ""
    return text if len(text) <= most else text[: most - 1] + "…"


environment = Environment(
    loader=PackageLoader("chat_outbox.entrypoints.http.dashboard", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(moment=_moment, duration=_duration, chat_text=_chat_text, clip=_clip)


def trace_link(template: str, traceparent: str | None) -> str | None:
    """The trace viewer's URL for a stored traceparent; only a well-formed one's hex trace
    id is put into the operator's template."""
    if not template or traceparent is None:
        return None
    found = TRACEPARENT.fullmatch(traceparent)
    if found is None:
        return None
    link = template.replace("{trace_id}", found[1])
    # The setting is checked when read; checked again here, where it becomes an href.
    return link if urlsplit(link).scheme.lower() in ("http", "https") else None


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = environment.get_template(template).render(
        request_path=request.url.path,
        csrf=getattr(request.state, "dashboard_csrf", None),
        signed_in=getattr(request.state, "dashboard_session", None) is not None,
        **context,
    )
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def error_page(request: Request, error: PageError) -> HTMLResponse:
    return page(request, "error.html", error.status, reason=error.reason, code=error.status)
