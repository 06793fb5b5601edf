"""Recording a chat message, against the in-memory fakes."""

from __future__ import annotations

import json

import pytest

from chat_outbox.application.errors import IdempotencyConflict
from chat_outbox.application.record.recording import (
    RecordChatMessage,
    idempotent_event_id,
    record_chat_message,
)
from chat_outbox.domain import ChatMessage, OutboxStatus
from tests.unit.conftest import (
    T0,
    TOPIC,
    Harness,
    chat,
)
from tests.unit.use_cases import (
    record_then_fail_business_write,
)

pytestmark = pytest.mark.unit


async def test_uncommitted_unit_of_work_leaves_no_outbox_row(harness: Harness) -> None:
    """Recording inside a transaction the caller never commits leaves nothing behind."""
    async with harness.uow() as uow:
        await record_chat_message(
            uow, chat(), topic=TOPIC, clock=harness.clock, event_ids=harness.event_ids
        )

    assert harness.store.outbox == {}


async def test_failed_business_write_rolls_back_the_outbox_row(harness: Harness) -> None:
    """When the caller's business write fails after recording, the outbox row goes too."""
    with pytest.raises(ValueError, match="business rule violated"):
        await record_then_fail_business_write(harness)

    assert harness.store.outbox == {}


async def test_committed_unit_of_work_leaves_one_pending_row(harness: Harness) -> None:
    """Recording and committing stores one pending row, due now, with the chat as payload."""
    async with harness.uow() as uow:
        recorded = await record_chat_message(
            uow,
            chat("conv-9", "héllo 🙂"),
            topic=TOPIC,
            clock=harness.clock,
            event_ids=harness.event_ids,
            max_retry=5,
        )
        await uow.commit()

    row = harness.row(recorded.id)
    assert list(harness.store.outbox) == [recorded.id]
    assert (row.status, row.retry_count, row.max_retry, row.next_retry_at) == (
        OutboxStatus.PENDING,
        0,
        5,
        T0,
    )
    assert (row.biz_type, row.topic, row.message_key) == ("chat_history_persist", TOPIC, "conv-9")
    assert json.loads(row.payload) == {
        "user_id": 7,
        "conversation_id": "conv-9",
        "role": "user",
        "message": "héllo 🙂",
    }


async def test_recording_once_returns_the_first_row_for_a_repeat_and_refuses_another_message(
    harness: Harness,
) -> None:
    """Under one event id the same message records once (a repeat gets the first row back),
    and a different message is an IdempotencyConflict that records nothing."""
    record = RecordChatMessage(harness.uow, harness.clock, harness.event_ids, "t")
    chat = ChatMessage.create(user_id=1, conversation_id="c", role="user", message="hi")
    event_id = idempotent_event_id("c", "req-1")
    first, replayed_first = await record.once(chat, event_id)
    again, replayed_again = await record.once(chat, event_id)
    other = ChatMessage.create(user_id=1, conversation_id="c", role="user", message="bye")
    with pytest.raises(IdempotencyConflict):
        await record.once(other, event_id)
    assert (replayed_first, replayed_again) == (False, True)
    assert again.id == first.id
    assert len(harness.store.outbox) == 1
