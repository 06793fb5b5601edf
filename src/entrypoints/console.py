"""The `chat-outbox` process: trim dependency-injector's imports, then run the command line."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chat_outbox.entrypoints.injection import import_quietly


def load() -> Callable[[Sequence[str] | None], int]:
    """The command line's `main`, imported after the trim (the CLI's modules import
    dependency-injector)."""
    import_quietly()
    from chat_outbox.entrypoints.cli import main

    return main


def main(argv: Sequence[str] | None = None) -> int:
    return load()(argv)
