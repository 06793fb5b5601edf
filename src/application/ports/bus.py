"""The message bus: records out (the relay) and records in (the consumer)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import attrs

from chat_outbox.domain import PublishFailure


@attrs.frozen
class OutgoingRecord:
    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


PublishResult = PublishFailure | None
"""None means the bus acknowledged the record."""


class MessageBus(Protocol):
    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        """Publish a batch; return one result per record, in order. A record that fails
        stops its key for the rest of the call: no later record with that key (in any
        topic) is delivered, and each reports a failure. So a batch in per-key order
        arrives in per-key order, with no gap behind a failure. Never raises for a
        record's own failure: that is what the result is for."""
        ...


@attrs.frozen
class IncomingRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: datetime | None = None
    """When the bus took the record (Kafka's CreateTime), if the bus says."""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None


class MessageSource(Protocol):
    async def fetch(self, max_records: int, timeout: float) -> list[IncomingRecord]: ...

    async def acknowledge(self, records: Sequence[IncomingRecord]) -> None:
        """Mark records done; called only after the handler's transaction committed."""
        ...

    async def dead_letter(self, record: IncomingRecord, reason: str) -> None:
        """Park a record that can never be handled, with the reason; raises if it could
        not be parked, so the caller does not acknowledge it."""
        ...
