"""The `chat-outbox` command line: parse, configure once, run one command, map errors to exits."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import NoReturn

import structlog

from chat_outbox.adapters.extras import MissingExtra, require
from chat_outbox.adapters.metrics import ListenFailed
from chat_outbox.adapters.sql import BadDatabaseUrl, SchemaNotMigrated
from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.domain import InvalidChatMessage, Role
from chat_outbox.entrypoints import commands, config_command, operating
from chat_outbox.entrypoints.config import ConfigError, Settings
from chat_outbox.entrypoints.config_file import load_settings
from chat_outbox.entrypoints.log_setup import configure_logging

EXIT_USAGE = 2
EXIT_RUNTIME = 1
USAGE_ERRORS = (
    ConfigError,
    BadDatabaseUrl,
    SchemaNotMigrated,
    InvalidChatMessage,
    ListenFailed,
    MissingExtra,
)


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


HANDLERS_HELP = (
    "your EventRegistry, as package.module:name: its event types and handlers besides chat "
    "messages [CHAT_OUTBOX_EVENTS]"
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="chat-outbox",
        description="Reliable chat-history persistence with the transactional outbox pattern. "
        "Configuration comes from CHAT_OUTBOX_* environment variables, over an optional "
        "TOML file.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="a TOML settings file (default: $CHAT_OUTBOX_CONFIG); environment variables win",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser
    )
    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        run=commands.migrate
    )

    send = sub.add_parser("send", help="record one chat message in the outbox")
    send.add_argument("--user-id", type=int, required=True)
    send.add_argument("--conversation-id", required=True)
    send.add_argument("--role", required=True, choices=[r.value for r in Role])
    send.add_argument("--message", required=True, help="the text; '-' reads it from stdin")
    send.add_argument("--traceparent", help="W3C trace context to carry (default: the active one)")
    send.set_defaults(run=commands.send)

    stats = sub.add_parser("stats", help="counts by status, oldest pending and published ages")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=commands.stats)

    history = sub.add_parser("history", help="a conversation's persisted chat history")
    history.add_argument("--conversation-id", required=True)
    history.add_argument(
        "--limit", type=operating.whole_number(1, operating.MAX_LIMIT), default=1000
    )
    history.add_argument("--json", action="store_true")
    history.set_defaults(run=commands.history)

    relay = sub.add_parser("relay", help="publish due outbox rows to the bus until stopped")
    relay.add_argument("--once", action="store_true", help="drain what is due now, then exit")
    relay.add_argument("--handlers", metavar="MODULE:NAME", help=HANDLERS_HELP)
    relay.set_defaults(run=_relay)

    consume = sub.add_parser(
        "consume", help="persist bus records into chat history, and run your event handlers"
    )
    consume.add_argument(
        "--idle-exit",
        type=operating.seconds,
        metavar="SECONDS",
        help="exit after this long with nothing to consume",
    )
    consume.add_argument("--handlers", metavar="MODULE:NAME", help=HANDLERS_HELP)
    consume.set_defaults(run=_consume)

    operating.add_parsers(sub)
    config_command.add_parsers(sub)

    serve = sub.add_parser("serve", help="the HTTP API, with /metrics and the admin routes")
    serve.add_argument("--host", help="address to bind [CHAT_OUTBOX_HTTP_HOST, 127.0.0.1]")
    serve.add_argument("--port", type=_port, help="port to bind [CHAT_OUTBOX_HTTP_PORT, 8080]")
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve the message routes without authentication on a non-loopback address",
    )
    serve.set_defaults(run=_serve)

    run_demo = sub.add_parser("demo", help="record, relay and consume a few dozen messages")
    run_demo.add_argument("--messages", type=operating.whole_number(1, 100_000), default=36)
    run_demo.add_argument("--conversations", type=operating.whole_number(1, 10_000), default=4)
    run_demo.set_defaults(run=_demo)
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


# The processes and the demo are imported by their command only: their containers import
# dependency-injector, which imports FastAPI when it is installed, and `--help` needs none.
async def _relay(args: argparse.Namespace, settings: Settings) -> int:
    from chat_outbox.entrypoints import processes

    return await processes.relay(args, settings)


async def _consume(args: argparse.Namespace, settings: Settings) -> int:
    from chat_outbox.entrypoints import processes

    return await processes.consume(args, settings)


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from chat_outbox.entrypoints import demo

    return await demo.run(args, settings)


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    for module in ("fastapi", "uvicorn", "jwt"):
        require(module, "http", "chat-outbox serve")
    from chat_outbox.entrypoints.http.server import (
        serve,  # FastAPI is imported by this command only
    )

    return await serve(args, settings)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(path=args.config).settings
    except ConfigError as error:
        return _fail(str(error), EXIT_USAGE)
    configure_logging(settings.core.log_format, settings.core.log_level)
    try:
        code: int = asyncio.run(args.run(args, settings))
    except USAGE_ERRORS as error:
        return _fail(str(error), EXIT_USAGE)
    except StoreUnavailable as error:
        return _fail(str(error), EXIT_RUNTIME)
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - logged with its traceback, then a failing exit
        structlog.get_logger(__name__).exception("command_crashed", command=args.command)
        return EXIT_RUNTIME
    return code


def _fail(reason: str, code: int) -> int:
    print(f"chat-outbox: error: {reason}", file=sys.stderr)
    return code
