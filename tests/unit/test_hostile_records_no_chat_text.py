"""Chat text never appears in a consumer log line or a DLQ reason: reasons name the field
and the problem, never the value of a message, even when a driver's error quotes it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Self

import pytest
from structlog.testing import capture_logs

from chat_outbox.adapters.memory import InMemoryChatHistoryRepository, InMemoryUnitOfWork
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.domain import Envelope, HistoryEntry
from tests.unit.conftest import Harness, RecordingSleep

pytestmark = pytest.mark.unit
SECRET = "SECRET-chat-text-7f3a"


class QuotingHistory(InMemoryChatHistoryRepository):
    """Refuses a message holding the secret with an error quoting it, as a driver's text
    (or SQLAlchemy's [parameters: ...]) does."""

    async def add_many(self, entries: Sequence[HistoryEntry]) -> int:
        for entry in entries:
            if SECRET in entry.message:
                raise ValueError(f"Incorrect string value: '{entry.message}' for column 'message'")
        return await super().add_many(entries)


class QuotingUnitOfWork(InMemoryUnitOfWork):
    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.history = QuotingHistory(self.history.entries)
        return self


def with_message(envelope: bytes, raw: str) -> bytes:
    """The envelope with its message replaced by the raw JSON text `raw`."""
    document = json.loads(envelope)
    document["payload"]["message"] = "@@RAW@@"
    return json.dumps(document).replace('"@@RAW@@"', raw).encode()


async def test_no_log_line_or_dlq_reason_quotes_a_message(harness: Harness) -> None:
    """Malformed, forged, conflicting and database-refused records carrying a secret text
    are all dead-lettered, and neither their reasons nor any log line quote it."""
    refused = await harness.record("conv-1", f"refused by the database {SECRET}")
    valid = await harness.record("conv-1", "fine")
    base = Envelope.for_outbox_message(valid).encode()
    secret = json.dumps(SECRET)
    records = [
        with_message(base, json.dumps(f"{SECRET}\x1b[2J")),  # control character
        with_message(base, json.dumps(f"{SECRET}\x00")),  # NUL
        with_message(base, json.dumps(f"{SECRET}\ud800")),  # lone surrogate
        with_message(base, json.dumps(SECRET * 40_000)),  # over the size limit
        with_message(base, f"[{secret}]"),  # not a string
        with_message(base, f'{secret}, "message": {secret}'),  # duplicate field
        with_message(base, json.dumps(f"{SECRET} forged"))
        .replace(b'"outbox_id": %d' % valid.id, b'"outbox_id": 999')
        .replace(valid.event_id.encode(), b"00000000-0000-0000-0000-0000000000ff"),  # no row
        Envelope.for_outbox_message(refused).encode(),  # the database refuses it
        base,
        with_message(base, json.dumps(f"{SECRET} rewritten")),  # conflict with `base`
    ]
    for value in records:
        harness.bus.produce_raw(value, b"conv-1")
    writer = UnitOfWorkHistoryWriter(lambda: QuotingUnitOfWork(harness.store))
    consumer = Consumer(harness.bus, writer, harness.clock, sleep=RecordingSleep())

    with capture_logs() as logs:
        report = await consumer.consume_batch(0.0)
        harness.bus.produce_raw(records[-1], b"conv-1")
        await consumer.consume_batch(0.0)

    assert (report.persisted, report.dead_lettered) == (1, len(records) - 1)
    reasons = [reason for _, reason in harness.bus.dead_letters]
    assert len(reasons) == len(records)
    assert all(reason for reason in reasons)
    assert [r for r in reasons if SECRET in r] == []
    assert [line for line in logs if SECRET in repr(line)] == []
