"""`chat-outbox config show`: the effective configuration, where each value came from,
with every secret redacted."""

from __future__ import annotations

import argparse
import json
from typing import Any

import attrs

from chat_outbox.entrypoints.config import Settings, redact_url
from chat_outbox.entrypoints.config_file import load_settings

SECRET_WORDS = ("password", "secret", "token")


def add_parsers(sub: Any) -> None:
    config = sub.add_parser("config", help="inspect the configuration")
    actions = config.add_subparsers(
        dest="config_command", required=True, metavar="ACTION", parser_class=type(config)
    )
    show = actions.add_parser("show", help="effective settings and their sources, redacted")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=show_config)


def redacted(name: str, value: object) -> object:
    """Secrets become ***; URLs keep everything but their password."""
    if isinstance(value, str) and value and any(word in name for word in SECRET_WORDS):
        return "***"
    if isinstance(value, str) and name.endswith("_url"):
        return redact_url(value)
    return value


async def show_config(args: argparse.Namespace, settings: Settings) -> int:
    origins = load_settings(path=args.config).origins
    shown = {
        field.name: {
            "value": redacted(field.name, getattr(settings, field.name)),
            "source": origins.get(field.name, "default"),
        }
        for field in attrs.fields(Settings)
    }
    if args.json:
        print(json.dumps(shown))
        return 0
    for name, entry in shown.items():
        print(f"{name:<30} {entry['value']!s:<44} {entry['source']}")
    return 0
