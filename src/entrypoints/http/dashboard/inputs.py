"""Query and form values as the dashboard accepts them; anything else is a PageError (a
4xx page with a one-line reason), never a 500."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl

from chat_outbox.domain import InvalidChatMessage
from chat_outbox.domain.chat import checked_conversation_id
from chat_outbox.entrypoints.durations import parse_duration
from chat_outbox.entrypoints.http.deps import MAX_ID

MAX_EVENT_ID_CHARS = 36
MAX_SEARCH_CHARS = 200
MAX_WATCHED = 50
MAX_FORM_FIELDS = 10


class PageError(Exception):
    """An answer other than the page asked for: its status and one line saying why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def outbox_id(raw: str, name: str = "outbox id") -> int:
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and 1 <= int(text) <= MAX_ID):
        raise PageError(400, f"{name} must be a whole number from 1 to {MAX_ID}")
    return int(text)


def event_id(raw: str) -> str:
    text = raw.strip()
    if not 1 <= len(text) <= MAX_EVENT_ID_CHARS or not (text.isascii() and text.isprintable()):
        raise PageError(400, f"an event id is 1-{MAX_EVENT_ID_CHARS} printable ASCII characters")
    return text


def conversation_id(raw: str) -> str:
    try:
        return checked_conversation_id(raw)
    except InvalidChatMessage as error:
        raise PageError(400, str(error)) from None


def search_text(raw: str, name: str) -> str | None:
    if not raw:
        return None
    if len(raw) > MAX_SEARCH_CHARS or not raw.isprintable():
        raise PageError(400, f"{name} must be at most {MAX_SEARCH_CHARS} printable characters")
    return raw


def age(raw: str, name: str) -> timedelta | None:
    if not raw.strip():
        return None
    if len(raw) > 40:
        raise PageError(400, f"{name} must be a duration like 30s, 15m, 12h or 7d")
    try:
        return parse_duration(raw)
    except ValueError as error:
        raise PageError(400, f"{name}: {error}") from None


def limit(raw: str | None, default: int, most: int) -> int:
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and 1 <= int(text) <= most):
        raise PageError(400, f"limit must be a whole number from 1 to {most}")
    return int(text)


def id_list(raw: str) -> list[int]:
    parts = [part for part in raw.split(",") if part.strip()]
    if len(parts) > MAX_WATCHED:
        raise PageError(400, f"at most {MAX_WATCHED} ids at once")
    return [outbox_id(part) for part in parts]


def form_fields(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body as its fields; one value per name."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "the form is not valid URL-encoded UTF-8") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise PageError(400, f"the form repeats a field {name[:40]!r}")
        fields[name] = value
    return fields
