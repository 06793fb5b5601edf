"""`chat-outbox config show`: the effective configuration by section, where each value
came from, with every secret redacted; `chat-outbox config docs`: the reference of every
setting (docs/configuration.md), generated from the declarations."""

from __future__ import annotations

import argparse
import json
from typing import Any

from chat_outbox.entrypoints.config import BY_KEY, DECLARATIONS, Settings
from chat_outbox.entrypoints.config_docs import reference
from chat_outbox.entrypoints.config_file import load_settings


def add_parsers(sub: Any) -> None:
    config = sub.add_parser("config", help="inspect the configuration")
    actions = config.add_subparsers(
        dest="config_command", required=True, metavar="ACTION", parser_class=type(config)
    )
    show = actions.add_parser("show", help="effective settings and their sources, redacted")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=show_config)
    docs = actions.add_parser("docs", help="the reference of every setting, in Markdown")
    docs.set_defaults(run=print_reference)


def redacted(key: str, value: object) -> object:
    """The value as shown: a secret's as ***, a URL's without its password."""
    return BY_KEY[key].redact(value)


def shown(settings: Settings, origins: dict[str, str]) -> dict[str, dict[str, object]]:
    """Each setting by key: its value, redacted, and where it came from."""
    return {
        d.key: {"value": d.redact(settings.value(d)), "source": origins.get(d.key, "default")}
        for d in DECLARATIONS
    }


async def show_config(args: argparse.Namespace, settings: Settings) -> int:
    entries = shown(settings, load_settings(path=args.config).origins)
    if args.json:
        print(json.dumps(entries))
        return 0
    section = ""
    for d in DECLARATIONS:
        if d.section != section:
            section = d.section
            print(f"{'' if d is DECLARATIONS[0] else chr(10)}[{section}]")
        entry = entries[d.key]
        print(f"{d.name:<26} {_text(entry['value']):<44} {entry['source']}")
    return 0


def _text(value: object) -> str:
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return str(value).lower()
    return '""' if value == "" else str(value)


async def print_reference(args: argparse.Namespace, settings: Settings) -> int:
    print(reference(), end="")
    return 0
