"""Clocks and event ids: the system ones, and a manual clock for tests and simulations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import attrs

from chat_outbox.application.ports import Clock


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)


@attrs.define
class ManualClock(Clock):
    current: datetime = attrs.field(factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def uuid4_event_id() -> str:
    return str(uuid.uuid4())
