"""The `chat-outbox` console script: the command line's `main`."""

from __future__ import annotations

from chat_outbox.entrypoints.cli import main

__all__ = ["main"]
