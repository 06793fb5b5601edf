"""POST with an Idempotency-Key over real HTTP: a retried request records its message once."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.http_helpers import serving
from tests.integration.kafka_helpers import count_by_status, on_sqlite_and_postgresql
from tests.integration.test_http_server import container_on

pytestmark = [pytest.mark.integration, on_sqlite_and_postgresql]


async def post(
    client: httpx.AsyncClient, conversation: str, text: str, key: str | bytes
) -> httpx.Response:
    return await client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"user_id": 7, "role": "user", "message": text},
        headers=[(b"Idempotency-Key", key if isinstance(key, bytes) else key.encode())],
    )


async def test_a_retried_request_answers_with_the_first_recording(engine: AsyncEngine) -> None:
    """The same key and message twice: 202, then 200 with the same outbox id, one row."""
    async with serving(container_on(engine)) as client:
        first = await post(client, "c-1", "hello", "req-42")
        again = await post(client, "c-1", "hello", "req-42")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()
    assert await count_by_status(engine) == {"pending": 1}


async def test_a_key_reused_for_another_message_is_a_409_that_records_nothing(
    engine: AsyncEngine,
) -> None:
    """A different message under a key already used in the conversation is refused."""
    async with serving(container_on(engine)) as client:
        assert (await post(client, "c-1", "hello", "req-42")).status_code == 202
        conflict = await post(client, "c-1", "goodbye", "req-42")
    assert conflict.status_code == 409
    assert "Idempotency-Key" in conflict.json()["error"]
    assert await count_by_status(engine) == {"pending": 1}


async def test_a_key_belongs_to_its_conversation(engine: AsyncEngine) -> None:
    """The same key in two conversations records two messages."""
    async with serving(container_on(engine)) as client:
        one = await post(client, "c-1", "hello", "req-42")
        two = await post(client, "c-2", "hello", "req-42")
    assert (one.status_code, two.status_code) == (202, 202)
    assert one.json()["outbox_id"] != two.json()["outbox_id"]


@pytest.mark.parametrize("key", ["", "has space", "é".encode(), "x" * 256])
async def test_a_malformed_key_is_a_422_naming_the_header(
    engine: AsyncEngine, key: str | bytes
) -> None:
    """Keys are 1-255 visible ASCII characters; anything else is refused before recording."""
    async with serving(container_on(engine)) as client:
        response = await post(client, "c-1", "hello", key)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.text
    assert await count_by_status(engine) == {}
