"""A record is checked against its outbox row before it has any effect (in-memory fakes):
the row must exist with the record's event id, conversation and type; a redelivery of an
event id already in history stays a harmless duplicate even after its row was purged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chat_outbox.application.operate.operations import read_history
from chat_outbox.application.ports import NewOutboxMessage
from chat_outbox.domain import Envelope, OutboxMessage, OutboxStatus
from tests.unit.conftest import T0, TOPIC, Harness

pytestmark = pytest.mark.unit
TIMEOUT = 0.0


def relayed(row: OutboxMessage, **changes: Any) -> bytes:
    """The record the relay sends for `row`, with envelope or payload fields changed."""
    document = json.loads(Envelope.for_outbox_message(row).encode())
    for name, value in changes.items():
        target = document["payload"] if name in document["payload"] else document
        target[name] = value
    return json.dumps(document).encode()


async def consume(harness: Harness, *records: tuple[bytes, str]) -> None:
    for value, key in records:
        harness.bus.produce_raw(value, key.encode())
    await harness.consumer().consume_batch(TIMEOUT)


def reasons(harness: Harness) -> list[str]:
    return [reason for _, reason in harness.bus.dead_letters]


async def test_a_record_naming_another_conversations_outbox_id_is_refused(
    harness: Harness,
) -> None:
    """A record of conv-1 that names conv-2's row neither marks that row consumed nor adds
    history; conv-2's real record is then persisted as usual."""
    mine = await harness.record("conv-1", "mine")
    theirs = await harness.record("conv-2", "theirs")
    forged = relayed(mine, outbox_id=theirs.id, event_id="00000000-0000-0000-0000-0000000000ff")

    await consume(harness, (forged, "conv-1"))

    assert reasons(harness) == [
        f"forged_or_stale: outbox row {theirs.id} has another event_id and message_key"
    ]
    assert harness.store.history == {}
    assert harness.status(theirs.id) is OutboxStatus.PENDING
    await consume(harness, (relayed(theirs), "conv-2"))
    assert [e.message for e in await read_history(harness.uow, "conv-2")] == ["theirs"]
    assert harness.status(theirs.id) is OutboxStatus.CONSUMED


async def test_a_record_reusing_an_event_id_with_other_text_is_refused(harness: Harness) -> None:
    """A record carrying an existing event id with other text, under another row of the
    conversation, stores nothing and touches no row; both real records persist after it."""
    first = await harness.record("conv-1", "the real text")
    second = await harness.record("conv-1", "the second")
    forged = relayed(first, message="a forged text", outbox_id=second.id)

    await consume(harness, (forged, "conv-1"))

    assert reasons(harness) == [f"forged_or_stale: outbox row {second.id} has another event_id"]
    assert harness.store.history == {}
    assert {harness.status(first.id), harness.status(second.id)} == {OutboxStatus.PENDING}
    await consume(harness, (relayed(first), "conv-1"), (relayed(second), "conv-1"))
    history = await read_history(harness.uow, "conv-1")
    assert [e.message for e in history] == ["the real text", "the second"]


async def test_a_record_whose_outbox_row_does_not_exist_is_refused(harness: Harness) -> None:
    """An outbox id with no row adds no history: DLQ, forged_or_stale."""
    row = await harness.record("conv-1", "hello")
    forged = relayed(row, outbox_id=999)

    await consume(harness, (forged, "conv-1"))

    assert reasons(harness) == ["forged_or_stale: no outbox row 999"]
    assert harness.store.history == {}
    assert harness.status(row.id) is OutboxStatus.PENDING


async def test_a_record_naming_a_row_of_another_type_is_refused(harness: Harness) -> None:
    """A chat record pointing at a row of another registered type (same id, event id and
    key) is refused, and that row is left as it was."""
    async with harness.uow() as unit:
        other = await unit.outbox.add(
            NewOutboxMessage(
                event_id="00000000-0000-0000-0000-0000000000aa",
                biz_type="order_created",
                topic=TOPIC,
                message_key="conv-1",
                payload='{"user_id":7,"conversation_id":"conv-1","role":"user","message":"hi"}',
                max_retry=20,
                created_at=T0,
            )
        )
        await unit.commit()
    chat_row = await harness.record("conv-1", "hi")
    record = relayed(chat_row, outbox_id=other.id, event_id=other.event_id)

    await consume(harness, (record, "conv-1"))

    assert reasons(harness) == [f"forged_or_stale: outbox row {other.id} has another biz_type"]
    assert harness.store.history == {}
    assert harness.status(other.id) is OutboxStatus.PENDING


async def test_a_redelivery_after_the_row_was_purged_is_a_harmless_duplicate(
    harness: Harness,
) -> None:
    """Once its row is purged by retention, a record already in history is still only a
    duplicate: not dead-lettered, history unchanged."""
    row = await harness.record("conv-1", "kept")
    await consume(harness, (relayed(row), "conv-1"))
    del harness.store.outbox[row.id]  # retention purged the consumed row

    harness.bus.produce_raw(relayed(row), b"conv-1")
    report = await harness.consumer().consume_batch(TIMEOUT)

    assert (report.duplicates, report.dead_lettered) == (1, 0)
    assert [e.message for e in await read_history(harness.uow, "conv-1")] == ["kept"]


async def test_other_text_under_a_purged_event_id_is_still_a_conflict(harness: Harness) -> None:
    """The purge exception covers identical redeliveries only: other text under an event id
    in history goes to the DLQ as a conflict, history unchanged."""
    row = await harness.record("conv-1", "kept")
    await consume(harness, (relayed(row), "conv-1"))
    del harness.store.outbox[row.id]

    await consume(harness, (relayed(row, message="rewritten"), "conv-1"))

    assert "with a different payload than the one in chat history" in reasons(harness)[0]
    assert [e.message for e in await read_history(harness.uow, "conv-1")] == ["kept"]


def test_the_rule_is_equality_of_the_four_fields_and_names_only_fields() -> None:
    """Provenance.mismatch accepts exactly the equal row and names the differing fields,
    never their values."""
    from chat_outbox.domain.envelope import Provenance

    claimed = Provenance(5, "e-1", "secret conversation", "chat_history_persist")
    assert claimed.mismatch(claimed) is None
    assert claimed.mismatch(None) == "forged_or_stale: no outbox row 5"
    other = Provenance(5, "e-2", "another", "order_created")
    reason = claimed.mismatch(other) or ""
    assert reason.endswith("has another event_id and message_key and biz_type")
    assert "secret" not in reason
