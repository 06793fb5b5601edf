"""Events of types besides chat: each handed to the host's handler for its type, inside the
transaction that marks its row consumed."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol

import attrs

from chat_outbox.domain.envelope import EventEnvelope


class Outcome(enum.Enum):
    HANDLED = "handled"
    """The handler ran and its writes committed with the consumed mark."""
    DUPLICATE = "duplicate"
    """Handled before (the inbox holds its event id): nothing ran again."""
    HELD = "held"
    """An earlier event of its key is dead: its row waits behind it, pending, to be sent
    again once that one is requeued, as the relay holds a key behind a dead row."""
    REFUSED = "refused"
    """Its outbox row does not vouch for it (forged or stale): nothing ran, nothing changed."""


@attrs.frozen
class Handled:
    outcome: Outcome
    reason: str = ""
    """Why it was refused."""


class HandlerFailed(Exception):
    """A handler raised. `permanent`: it raised the documented permanent error (or the
    payload failed its type's validator), so retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


class EventHandlers(Protocol):
    def knows(self, event_type: str) -> bool:
        """Whether this consumer has a handler for the type."""
        ...

    async def handle(self, envelope: EventEnvelope, at: datetime) -> Handled:
        """In one transaction: check the row vouches for the envelope, record its event id
        in the inbox (a second delivery is a DUPLICATE), run the handler, mark the row
        consumed at `at`. HandlerFailed when the handler raised (nothing committed);
        StoreUnavailable when the database is out of reach."""
        ...

    async def fail(self, envelope: EventEnvelope, reason: str, at: datetime) -> None:
        """Mark the envelope's row dead with `reason` (domain.handler_failed), only when the
        row vouches for it: a forged record changes no row."""
        ...


class NoEventHandlers:
    """A consumer of chat messages only: every other type is unknown to it."""

    def knows(self, event_type: str) -> bool:
        return False

    async def handle(self, envelope: EventEnvelope, at: datetime) -> Handled:
        raise HandlerFailed(f"no handler for {envelope.type!r}", permanent=True)

    async def fail(self, envelope: EventEnvelope, reason: str, at: datetime) -> None:
        """Nothing to mark: without a store of its own it cannot check the row vouches."""
