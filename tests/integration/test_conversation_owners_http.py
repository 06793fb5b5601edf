"""Conversation ownership through the HTTP API on every database."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.tables import outbox_messages
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.domain import ChatMessage, Role
from tests.integration.test_http_auth import (
    ALICE,
    BOB,
    SECRET,
    as_user,
    client_for,
    message,
    served,
    settings_on,
)

pytestmark = pytest.mark.integration


async def test_the_second_users_first_write_to_a_new_conversation_is_a_404(
    engine: AsyncEngine,
) -> None:
    """Alice's first write claims a new conversation; Bob's next first write gets 404, his
    row is not recorded, and only Alice reads the conversation."""
    path = "/v1/conversations/fresh/messages"
    async with (
        served(engine, settings_on(engine, auth_jwt_secret=SECRET)) as address,
        client_for(address) as client,
    ):
        alice = await client.post(path, json=message(ALICE), headers=as_user(ALICE))
        bob = await client.post(path, json=message(BOB, "mine?"), headers=as_user(BOB))
        assert (alice.status_code, bob.status_code) == (202, 404), bob.text
        assert bob.json() == {"error": "no such conversation"}
        assert (await client.get(path, headers=as_user(ALICE))).status_code == 200
        assert (await client.get(path, headers=as_user(BOB))).status_code == 404
    async with engine.connect() as connection:
        payloads = (await connection.execute(select(outbox_messages.c.payload))).scalars().all()
    assert [json.loads(p)["user_id"] for p in payloads] == [ALICE]


async def test_a_conversation_recorded_without_auth_stays_its_first_writers(
    engine: AsyncEngine,
) -> None:
    """Messages recorded by a trusted caller claim nothing, yet Bob cannot take Alice's
    conversation over with his first checked write: its owner is its first message's user."""
    path = "/v1/conversations/by-cli/messages"
    uow = SqlUnitOfWorkFactory(engine)
    record = RecordChatMessage(uow, SystemClock(), uuid4_event_id, topic="t")
    await record(ChatMessage(ALICE, "by-cli", Role.USER, "recorded by the CLI"))
    async with (
        served(engine, settings_on(engine, auth_jwt_secret=SECRET)) as address,
        client_for(address) as client,
    ):
        bob = await client.post(path, json=message(BOB, "mine?"), headers=as_user(BOB))
        assert bob.status_code == 404, bob.text
        assert (await client.get(path, headers=as_user(BOB))).status_code == 404
        assert (await client.get(path, headers=as_user(ALICE))).status_code == 200
    async with engine.connect() as connection:
        payloads = (await connection.execute(select(outbox_messages.c.payload))).scalars().all()
    assert [json.loads(p)["user_id"] for p in payloads] == [ALICE]
