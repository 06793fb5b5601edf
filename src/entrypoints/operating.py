"""The operator commands: `dead list|show|requeue` and `purge`, each audited when it writes."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from chat_outbox.application.operate import operations
from chat_outbox.application.ports import DeadSelector
from chat_outbox.domain import BIZ_TYPE_CHAT_HISTORY, InvalidEvent, OutboxMessage, OutboxStatus
from chat_outbox.domain.events import checked_type_name
from chat_outbox.entrypoints.audit import audited
from chat_outbox.entrypoints.commands import command_tools, json_line, one_line, utf8_argument
from chat_outbox.entrypoints.config import ConfigError, Settings
from chat_outbox.entrypoints.durations import parse_duration, parse_moment

Moment = datetime | timedelta
"""A --since/--until value: a time, or a duration ago (resolved against the clock)."""
MAX_ID = 2**63 - 1
"""The largest outbox id: the column is a signed 64-bit integer."""
MAX_LIMIT = 100_000
"""The most rows `history` or `dead list` prints at once."""
YEAR_SECONDS = 365 * 86_400


def whole_number(least: int, most: int) -> Callable[[str], int]:
    """argparse type: a whole number from least to most, so none reaches the database
    out of its column's range (a driver overflow) or as a negative LIMIT (no limit)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also a number past int's 4,300 digits
            raise argparse.ArgumentTypeError(f"{text!r:.40} is not a whole number") from None
        if not least <= value <= most:
            raise argparse.ArgumentTypeError(f"{text!r:.40} is not {least}-{most}")
        return value

    return parse


def seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds up to a year."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r:.40} is not a number of seconds") from None
    if not 0 < value <= YEAR_SECONDS or math.isnan(value):
        raise argparse.ArgumentTypeError(f"{text!r:.40} is not more than 0 and at most a year")
    return value


def duration(text: str) -> timedelta:
    """argparse type: 30s, 15m, 12h, 7d or 2w."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def event_type(text: str) -> str:
    """argparse type: an event type's name (chat_history_persist, or a registered type's)."""
    if text == BIZ_TYPE_CHAT_HISTORY:
        return text
    try:
        return checked_type_name(text)
    except InvalidEvent as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def moment(text: str) -> Moment:
    """argparse type: an ISO 8601 time or a duration ago (resolved against the clock later)."""
    try:
        return parse_moment(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parsers(sub: Any) -> None:
    """Register `dead` and `purge` on the CLI's subparsers."""
    dead = sub.add_parser("dead", help="inspect and requeue dead messages")
    actions = dead.add_subparsers(
        dest="dead_command", required=True, metavar="ACTION", parser_class=type(dead)
    )
    listing = actions.add_parser("list", help="dead messages: last error, retries, age, held")
    _add_selector_arguments(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--limit", type=whole_number(1, MAX_LIMIT), default=100)
    listing.set_defaults(run=dead_list)

    show = actions.add_parser("show", help="one dead message in full, payload included")
    show.add_argument("outbox_id", type=whole_number(1, MAX_ID), metavar="ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=dead_show)

    requeue = actions.add_parser(
        "requeue", help="move dead messages back to pending, releasing their conversations"
    )
    _add_selector_arguments(requeue)
    requeue.add_argument("--all", action="store_true", help="every dead message")
    requeue.set_defaults(run=dead_requeue)

    purge_parser = sub.add_parser("purge", help="delete consumed rows older than a duration")
    purge_parser.add_argument(
        "--older-than", required=True, type=duration, metavar="DURATION",
        help="consumed longer ago than this: 30s, 15m, 12h, 7d or 2w",
    )  # fmt: skip
    purge_parser.set_defaults(run=purge)


def _add_selector_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--id", type=whole_number(1, MAX_ID), nargs="+", action="extend", dest="outbox_ids",
        metavar="ID",
        help="these outbox ids (repeatable)",
    )  # fmt: skip
    parser.add_argument("--conversation", dest="conversation_id", metavar="C")
    parser.add_argument(
        "--type", dest="event_type", type=event_type, metavar="TYPE",
        help="of this event type (chat messages: chat_history_persist)",
    )  # fmt: skip
    for bound, meaning in (("since", "at or after"), ("until", "before")):
        parser.add_argument(
            f"--{bound}", type=moment, metavar="TIME",
            help=f"died {meaning} TIME: ISO 8601 (UTC unless it says) or a duration ago, like 2h",
        )  # fmt: skip


def selector_from(args: argparse.Namespace, now: datetime) -> DeadSelector:
    def resolve(value: Moment | None) -> datetime | None:
        return now - value if isinstance(value, timedelta) else value

    conversation_id = args.conversation_id
    if conversation_id is not None:
        conversation_id = utf8_argument("--conversation", conversation_id)
    return DeadSelector(
        event_type=args.event_type,
        conversation_id=conversation_id,
        outbox_ids=tuple(args.outbox_ids or ()),
        died_since=resolve(args.since),
        died_until=resolve(args.until),
    )


def dead_document(message: OutboxMessage, held: int, now: datetime) -> dict[str, Any]:
    """What `dead list` shows of a dead row."""
    return {
        "id": message.id,
        "type": message.biz_type,
        "conversation_id": message.message_key,
        "retry_count": message.retry_count,
        "max_retry": message.max_retry,
        "held_behind": held,
        "age_s": _seconds(now - message.created_at),
        "died_at": message.updated_at.isoformat(),
        "dead_for_s": _seconds(now - message.updated_at),
        "last_error": message.last_error,
    }


async def dead_list(args: argparse.Namespace, settings: Settings) -> int:
    async with command_tools(settings) as tools:
        now = tools.clock.now()
        dead = await operations.list_dead(tools.uow, selector_from(args, now), args.limit)
        keys = sorted({m.message_key for m in dead})
        held = await operations.held_behind_dead(tools.uow, keys)
    for message in dead:
        row = dead_document(message, held[message.message_key], now)
        if args.json:
            print(json_line(row))
        else:
            print(
                one_line(
                    f"{row['id']:>10}  {row['type']:<22} {row['conversation_id']:<24} "
                    f"retries={row['retry_count']:<3} held={row['held_behind']:<4} "
                    f"age={row['age_s']}s dead_for={row['dead_for_s']}s  {row['last_error']}"
                )
            )
    return 0


async def dead_show(args: argparse.Namespace, settings: Settings) -> int:
    async with command_tools(settings) as tools:
        uow, now = tools.uow, tools.clock.now()
        message = await operations.get_message(uow, args.outbox_id)
        if message is None:
            return _fail(f"no outbox row has id {args.outbox_id}")
        if message.status is not OutboxStatus.DEAD:
            return _fail(f"outbox row {message.id} is {message.status.value}, not dead")
        held = await operations.held_behind_dead(uow, [message.message_key])
    document = {
        **dead_document(message, held[message.message_key], now),
        "event_id": message.event_id,
        "biz_type": message.biz_type,
        "topic": message.topic,
        "status": message.status.value,
        **{
            name: None if value is None else value.isoformat()
            for name, value in (
                ("created_at", message.created_at),
                ("updated_at", message.updated_at),
                ("next_retry_at", message.next_retry_at),
                ("published_at", message.published_at),
            )
        },
        "payload": _payload(message.payload),
    }
    if args.json:
        print(json_line(document))
    else:
        for name, value in document.items():
            shown = json_line(value) if name == "payload" else value
            print(one_line(f"{name:<16}{'-' if value is None else shown}"))
    return 0


async def dead_requeue(args: argparse.Namespace, settings: Settings) -> int:
    criteria = (args.outbox_ids, args.conversation_id, args.since, args.until)
    if any(value is not None for value in criteria) == args.all:
        raise ConfigError(
            "dead requeue: give --all, or --id, --conversation, --since/--until (not both)"
        )
    async with command_tools(settings) as tools:
        selector = selector_from(args, tools.clock.now())
        with audited("dead_requeue", selector.describe()) as progress:
            moved = await operations.requeue_dead(
                tools.uow, tools.clock, selector, progress=progress
            )
    print(json.dumps({"requeued": moved}))
    return 0


async def purge(args: argparse.Namespace, settings: Settings) -> int:
    async with command_tools(settings) as tools:
        cutoff = tools.clock.now() - args.older_than
        selector = {"consumed_before": cutoff.isoformat()}
        with audited("purge", selector) as progress:
            deleted = await operations.purge_consumed(
                tools.uow, cutoff, settings.relay.purge_batch_size, progress=progress
            )
    print(json.dumps({"deleted": deleted}))
    return 0


def _payload(stored: str) -> object:
    """The payload as JSON when it parses (a dead row's may not: that can be why it died)."""
    try:
        parsed: object = json.loads(stored)
    except ValueError:
        return stored
    return parsed


def _seconds(delta: timedelta) -> float:
    return round(delta.total_seconds(), 3)


def _fail(reason: str, code: int = 1) -> int:
    print(f"chat-outbox: error: {reason}", file=sys.stderr)
    return code
