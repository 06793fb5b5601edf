"""The one-shot commands. Each builds its container, does one thing, prints, and closes.
The operator commands (dead, purge) are in entrypoints.operating."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from chat_outbox.adapters.sql import ensure_migrated, upgrade
from chat_outbox.application.operate import operations
from chat_outbox.application.ports import OutboxStats
from chat_outbox.application.tracing import valid_traceparent
from chat_outbox.domain import ChatMessage, HistoryEntry, InvalidChatMessage, OutboxStatus
from chat_outbox.entrypoints.config import ConfigError, Settings

if TYPE_CHECKING:
    from chat_outbox.entrypoints.containers import Tools

log = structlog.get_logger(__name__)
# What ends a line, moves the cursor, starts an escape sequence or reorders the text on a
# terminal or in a line-based reader: C0 and C1 controls, DEL, the line and paragraph
# separators (str.splitlines splits at U+2028/9) and the bidi marks, embeddings,
# overrides and isolates.
UNSAFE_ON_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """The text with each character UNSAFE_ON_A_LINE shown as an escape such as \\r or
    \\x1b, so that a message prints as one line and cannot fake another or restyle the
    terminal."""
    return UNSAFE_ON_A_LINE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    char = found[0]
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def json_line(document: object) -> str:
    """The document as one JSON line: json.dumps escapes the C0 controls, and this the rest
    of UNSAFE_ON_A_LINE (DEL, C1, separators, bidi), as JSON's own \\u escapes."""
    return UNSAFE_ON_A_LINE.sub(
        lambda found: f"\\u{ord(found[0]):04x}", json.dumps(document, ensure_ascii=False)
    )


@asynccontextmanager
async def command_tools(settings: Settings, *, migrated: bool = True) -> AsyncIterator[Tools]:
    """What a command works with, from its container, on a schema checked to be current
    (unless not `migrated`); closed however the command ends."""
    # Imported here, with dependency-injector (and the FastAPI it loads when installed):
    # `--help` and a usage error need neither.
    from chat_outbox.entrypoints.containers import CliContainer, provided, resources

    async with resources(CliContainer(settings=settings)) as container:
        tools: Tools = await provided(container.tools)
        if migrated:
            await ensure_migrated(tools.engine)
        yield tools


async def migrate(args: argparse.Namespace, settings: Settings) -> int:
    async with command_tools(settings, migrated=False) as tools:
        await upgrade(tools.engine)
    log.info("schema_migrated")
    return 0


async def send(args: argparse.Namespace, settings: Settings) -> int:
    limit = settings.core.max_message_bytes
    text = stdin_text(limit) if args.message == "-" else utf8_argument("message", args.message)
    chat = ChatMessage.create(
        user_id=args.user_id,
        conversation_id=utf8_argument("conversation_id", args.conversation_id),
        role=args.role,
        message=text,
        max_message_bytes=limit,
    )
    traceparent = valid_traceparent(args.traceparent)
    if args.traceparent is not None and traceparent is None:
        raise ConfigError(f"--traceparent {args.traceparent!r:.80} is not a W3C traceparent")
    async with command_tools(settings) as tools:
        message = await tools.record(chat, traceparent=traceparent)
    log.info("message_recorded", outbox_id=message.id, conversation_id=chat.conversation_id)
    print(json.dumps({"outbox_id": message.id, "event_id": message.event_id}))
    return 0


def stdin_text(limit: int) -> str:
    """The message piped on stdin, read as bytes (the locale's decoder may be strict or
    lenient) and at most one byte past the limit, so a huge stream costs no memory."""
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise InvalidChatMessage(f"message is over the limit of {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidChatMessage(f"message is not valid UTF-8 at byte {error.start}") from None


def utf8_argument(name: str, value: str) -> str:
    """Python smuggles undecodable argv bytes in as lone surrogates: name them as what
    they are, invalid UTF-8, rather than letting a later check report a surrogate."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidChatMessage(f"{name} is not valid UTF-8 at byte {error.start}") from None
    return value


async def stats(args: argparse.Namespace, settings: Settings) -> int:
    async with command_tools(settings) as tools:
        figures = await operations.outbox_stats(tools.uow)
        now = tools.clock.now()
    document = stats_document(figures, now)
    if args.json:
        print(json.dumps(document))
        return 0
    for name, value in document.items():
        if isinstance(value, dict):
            for kind, counts in value.items():
                shown = " ".join(f"{status}={count}" for status, count in counts.items())
                print(one_line(f"type {kind:<23}{shown}"))
        else:
            print(f"{name:<28}{'-' if value is None else value}")
    return 0


def stats_document(figures: OutboxStats, now: datetime) -> dict[str, object]:
    def age(moment: datetime | None) -> float | None:
        return None if moment is None else round((now - moment).total_seconds(), 3)

    return {
        **{status.value: figures.counts.get(status, 0) for status in OutboxStatus},
        "oldest_pending_age_s": age(figures.oldest_pending_at),
        "oldest_published_age_s": age(figures.oldest_published_at),
        "dead_count": figures.dead,
        "held_behind_dead": figures.held,
        "by_type": {
            kind: {status.value: counts.get(status, 0) for status in OutboxStatus}
            for kind, counts in sorted(figures.by_type.items())
        },
    }


async def history(args: argparse.Namespace, settings: Settings) -> int:
    conversation_id = utf8_argument("conversation_id", args.conversation_id)
    async with command_tools(settings) as tools:
        entries = await operations.read_history(tools.uow, conversation_id, args.limit)
    for entry in entries:
        print(history_line(entry, as_json=args.json))
    return 0


def history_line(entry: HistoryEntry, *, as_json: bool) -> str:
    """One message as the one line `history` prints for it, text or JSON."""
    if as_json:
        return json_line(
            {
                "outbox_id": entry.outbox_id,
                "event_id": entry.event_id,
                "user_id": entry.user_id,
                "role": entry.role.value,
                "message": entry.message,
                "recorded_at": entry.recorded_at.isoformat(),
            }
        )
    return f"[{entry.recorded_at:%H:%M:%S}] {entry.role.value:>9}: {one_line(entry.message)}"
