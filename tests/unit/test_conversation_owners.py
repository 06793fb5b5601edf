"""Conversation ownership on in-memory fakes: the record use case's claim, and the HTTP
routes that ask for it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from chat_outbox.application.errors import IdempotencyConflict, NotOwner
from chat_outbox.application.record.recording import Claim, RecordChatMessage
from chat_outbox.domain import ChatMessage, Role
from chat_outbox.entrypoints.config import Settings
from tests.unit.conftest import TOPIC, Harness
from tests.unit.test_http_api import Api, api_for
from tests.unit.test_http_auth import ALICE, BOB, SECRET, as_service, as_user, message, path

pytestmark = pytest.mark.unit


def use_case(harness: Harness) -> RecordChatMessage:
    return RecordChatMessage(harness.uow, harness.clock, harness.event_ids, TOPIC)


def chat(user: int, conversation: str = "c1", text: str = "hello") -> ChatMessage:
    return ChatMessage(user, conversation, Role.USER, text)


async def test_an_exclusive_claim_makes_the_first_writer_owner_and_refuses_others(
    harness: Harness,
) -> None:
    """The first claimed record makes its writer owner; another user's is NotOwner and
    records nothing, while the owner keeps writing."""
    record = use_case(harness)
    await record(chat(ALICE), claim=Claim(ALICE))
    with pytest.raises(NotOwner):
        await record(chat(BOB), claim=Claim(BOB))
    await record(chat(ALICE, text="again"), claim=Claim(ALICE))
    assert harness.store.owners == {"c1": ALICE}
    assert [json.loads(r.payload)["user_id"] for r in harness.store.outbox.values()] == [ALICE] * 2


async def test_a_non_exclusive_claim_owns_a_new_conversation_and_writes_into_any(
    harness: Harness,
) -> None:
    """A service's claim makes the user it writes for the owner of a new conversation, and
    records into another user's conversation without changing its owner."""
    record = use_case(harness)
    await record(chat(BOB), claim=Claim(BOB, exclusive=False))
    await record(chat(ALICE), claim=Claim(ALICE, exclusive=False))
    assert harness.store.owners == {"c1": BOB}
    assert len(harness.store.outbox) == 2


async def test_a_record_without_a_claim_leaves_the_conversation_unclaimed(
    harness: Harness,
) -> None:
    """Trusted callers (CLI, library, serve without auth) record without claiming."""
    await use_case(harness)(chat(ALICE))
    assert harness.store.owners == {}
    assert len(harness.store.outbox) == 1


async def test_an_idempotent_replay_claims_before_it_looks_up_the_first_recording(
    harness: Harness,
) -> None:
    """The owner's retry replays its first recording; another user reusing the event id
    in that conversation is NotOwner, not a replay or a conflict that would reveal it."""
    record = use_case(harness)
    first, replayed = await record.once(chat(ALICE), "e-1", claim=Claim(ALICE))
    again, replayed_again = await record.once(chat(ALICE), "e-1", claim=Claim(ALICE))
    assert (replayed, replayed_again, again.id) == (False, True, first.id)
    with pytest.raises(NotOwner):
        await record.once(chat(BOB), "e-1", claim=Claim(BOB))
    with pytest.raises(IdempotencyConflict):
        await record.once(chat(ALICE, text="other"), "e-1", claim=Claim(ALICE))


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[Api]:
    async for api in api_for(harness, Settings.of(auth_jwt_secret=SECRET)):
        yield api


async def test_the_second_users_first_write_to_a_new_conversation_is_a_404(api: Api) -> None:
    """Alice's first write claims the conversation; Bob's then gets 404 and is not recorded."""
    alice = await api.client.post(path("new"), json=message(ALICE), headers=as_user(ALICE))
    bob = await api.client.post(path("new"), json=message(BOB), headers=as_user(BOB))
    assert (alice.status_code, bob.status_code) == (202, 404)
    assert bob.json() == {"error": "no such conversation"}
    assert [row.id for row in api.harness.store.outbox.values()] == [alice.json()["outbox_id"]]
    assert api.harness.store.owners == {"new": ALICE}


async def test_a_service_write_into_anothers_conversation_keeps_its_owner(api: Api) -> None:
    """A service records as Bob into Alice's conversation: accepted, and still Alice's."""
    await api.client.post(path(), json=message(ALICE), headers=as_user(ALICE))
    response = await api.client.post(path(), json=message(BOB), headers=as_service())
    assert response.status_code == 202, response.text
    assert (await api.client.get(path(), headers=as_user(ALICE))).status_code == 200
    assert (await api.client.get(path(), headers=as_user(BOB))).status_code == 404


async def test_a_conversation_recorded_without_a_claim_belongs_to_its_first_writer(
    api: Api,
) -> None:
    """Rows recorded by a trusted caller (no claim) still belong to the user of the first
    message: that user reads them, and another user's first checked write is refused."""
    await use_case(api.harness)(chat(ALICE, conversation="conv-a"))
    assert (await api.client.get(path(), headers=as_user(ALICE))).status_code == 200
    assert (await api.client.get(path(), headers=as_user(BOB))).status_code == 404
    refused = await api.client.post(path(), json=message(BOB), headers=as_user(BOB))
    assert refused.status_code == 404, refused.text
    accepted = await api.client.post(path(), json=message(ALICE), headers=as_user(ALICE))
    assert accepted.status_code == 202, accepted.text
    assert api.harness.store.owners == {"conv-a": ALICE}
