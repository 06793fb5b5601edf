"""A single-process bus: an ordered log per topic, one consumer position, and a DLQ."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import attrs

from chat_outbox.application.ports import (
    IncomingRecord,
    MessageBus,
    MessageSource,
    OutgoingRecord,
    PublishResult,
)
from chat_outbox.domain import PublishFailure

FailureInjector = Callable[[OutgoingRecord], PublishFailure | None]


@attrs.define
class InMemoryBus(MessageBus, MessageSource):
    """Both ports of a bus. `log`, `position`, `acknowledged` and `dead_letters` are the
    state tests inspect; `fail_with` injects a publish failure per record; a record over
    `max_record_bytes` fails for good, as on a real broker. Records go one at a time, in
    call order, so a failed record stops its key for the rest of the call as it comes."""

    log: list[IncomingRecord] = attrs.field(factory=list)
    position: int = 0
    acknowledged: int = 0
    dead_letters: list[tuple[IncomingRecord, str]] = attrs.field(factory=list)
    fail_with: FailureInjector | None = None
    max_record_bytes: int | None = None
    _arrived: asyncio.Event = attrs.field(factory=asyncio.Event)

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        results: list[PublishResult] = []
        stopped: set[str] = set()
        for record in records:
            if record.key in stopped:
                results.append(PublishFailure.unavailable("not sent: an earlier record failed"))
                continue
            failure = self._too_large(record) or (
                self.fail_with(record) if self.fail_with else None
            )
            if failure is not None:
                stopped.add(record.key)
            if failure is None:
                self.log.append(
                    IncomingRecord(
                        record.topic,
                        0,
                        len(self.log),
                        record.key.encode(),
                        record.value,
                        record.headers,
                    )
                )
            results.append(failure)
        self._arrived.set()
        return results

    def _too_large(self, record: OutgoingRecord) -> PublishFailure | None:
        size, limit = len(record.value), self.max_record_bytes
        if limit is None or size <= limit:
            return None
        return PublishFailure.fatal(f"record too large: {size} bytes, over the limit of {limit}")

    async def fetch(self, max_records: int, timeout: float) -> list[IncomingRecord]:
        if self.position >= len(self.log):
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
        batch = self.log[self.position : self.position + max_records]
        self.position += len(batch)
        return batch

    async def acknowledge(self, records: Sequence[IncomingRecord]) -> None:
        if records:
            self.acknowledged = max(self.acknowledged, max(r.offset for r in records) + 1)

    async def dead_letter(self, record: IncomingRecord, reason: str) -> None:
        self.dead_letters.append((record, reason))

    def produce_raw(self, value: bytes | None, key: bytes | None = None, topic: str = "") -> None:
        """Put bytes on the log directly, as a foreign producer would."""
        self.log.append(IncomingRecord(topic, 0, len(self.log), key, value))
        self._arrived.set()

    def crash_consumer(self) -> None:
        """The consumer died: everything not acknowledged is delivered again."""
        self.position = self.acknowledged
