"""Records of event types besides chat, each handed to its handler: tried again while the
handler raises, then dead-lettered with its row dead; a type with no handler is refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import attrs
import structlog

from chat_outbox.application.consume.retrying import Patience
from chat_outbox.application.ports import Clock, IncomingRecord
from chat_outbox.application.ports.handlers import EventHandlers, HandlerFailed, Outcome
from chat_outbox.domain.envelope import AnyEnvelope, EventEnvelope

log = structlog.get_logger(__name__)

Events = list[tuple[IncomingRecord, EventEnvelope]]
Mixed = list[tuple[IncomingRecord, AnyEnvelope]]
DeadLetter = Callable[[IncomingRecord, str], Awaitable[None]]


@attrs.frozen
class EventHandling:
    handlers: EventHandlers
    clock: Clock
    patience: Patience
    attempts: int
    """Tries of a handler that keeps raising before its event is dead-lettered."""
    dead_letter: DeadLetter

    async def refuse_unknown(self, record: IncomingRecord, envelope: EventEnvelope) -> bool:
        """True when no handler here takes the record's type: it is dead-lettered as
        unknown_type and its row goes dead, and the batch goes on."""
        if self.handlers.knows(envelope.type):
            return False
        reason = f"unknown_type: no handler for event type {envelope.type!r} here"
        await self._fail(envelope, reason)
        await self.dead_letter(record, reason)
        return True

    async def handle(self, record: IncomingRecord, envelope: EventEnvelope) -> Outcome | None:
        """The event's outcome; None when it was dead-lettered. A handler that raises is
        tried again with backoff (the batch waits, unacknowledged), up to `attempts` tries,
        or only once when its error is permanent."""
        attempt = 0
        while True:
            try:
                handled = await self.patience.until_done(
                    "handle", partial(self.handlers.handle, envelope, self.clock.now())
                )
            except HandlerFailed as failure:
                attempt += 1
                if failure.permanent or attempt >= self.attempts:
                    reason = f"handler_failed after {attempt} attempt(s): {failure}"[:500]
                    await self._fail(envelope, reason)
                    await self.dead_letter(record, reason)
                    return None
                delay = self.patience.policy.backoff(attempt).total_seconds()
                log.warning(
                    "handler_failed_retrying",
                    event_type=envelope.type,
                    outbox_id=envelope.outbox_id,
                    error=str(failure)[:500],
                    attempt=attempt,
                    retry_in_s=round(delay, 3),
                )
                await self.patience.sleep(delay)
                continue
            if handled.outcome is Outcome.REFUSED:
                await self.dead_letter(record, handled.reason)
                return None
            return handled.outcome

    async def _fail(self, envelope: EventEnvelope, reason: str) -> None:
        await self.patience.until_done(
            "handler_failed", partial(self.handlers.fail, envelope, reason, self.clock.now())
        )


def runs_by_kind(decoded: Mixed) -> list[tuple[Mixed, bool]]:
    """The batch cut into runs of chat records and runs of other events, in bus order, each
    with True for an events run: a key shared by both kinds keeps its order."""
    runs: list[tuple[Mixed, bool]] = []
    for item in decoded:
        events = isinstance(item[1], EventEnvelope)
        if runs and runs[-1][1] == events:
            runs[-1][0].append(item)
        else:
            runs.append(([item], events))
    return runs or [([], False)]
