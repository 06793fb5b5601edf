"""Operator actions: one structured audit line each, and progress on a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

import attrs
import structlog

AUDIT_LOGGER = __name__
"""Kept at info whatever CHAT_OUTBOX_LOG_LEVEL says (log_setup): audits are never filtered."""

log = structlog.get_logger(AUDIT_LOGGER)


@attrs.define
class Progress:
    """A running count, redrawn on one stderr line, only when stderr is a terminal."""

    label: str
    stream: TextIO = attrs.field(factory=lambda: sys.stderr)
    done: int = 0
    drawn: bool = False

    def __call__(self, done: int) -> None:
        self.done = done
        if self.stream.isatty():
            self.stream.write(f"\r{self.label}: {done}")
            self.stream.flush()
            self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def audited(
    action: str,
    selector: Mapping[str, object],
    stream: TextIO | None = None,
    *,
    user: str | None = None,
) -> Iterator[Progress]:
    """Log who did what to which rows, and how many, even when the action fails midway.
    `user` defaults to $USER, the operator at the terminal."""
    progress = Progress(action, stream or sys.stderr)
    fields = {
        "action": action,
        "selector": dict(selector),
        "user": user or os.environ.get("USER") or "unknown",
    }
    try:
        yield progress
    except BaseException as error:
        progress.close()
        log.warning(
            "audit", **fields, count=progress.done, outcome="failed", error=str(error)[:300]
        )
        raise
    progress.close()
    log.info("audit", **fields, count=progress.done, outcome="ok")
