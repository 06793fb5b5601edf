"""Issue 17, item 5 against real servers: a failed statement quotes no chat text on any of
the three databases, and uvicorn's answer to a trailing slash never names a forged Host."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.sql.engine import unavailable
from tests.integration.http_helpers import ADMIN, serving
from tests.integration.test_http_server import container_on

pytestmark = pytest.mark.integration

CHAT_TEXT = "my bank password is hunter2, please remember it"


async def test_a_failed_statement_quotes_no_parameter(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement that fails with chat text bound as a parameter raises, and logs at INFO,
    without that text: engines hide parameters."""
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    with pytest.raises(DBAPIError) as failed:
        async with engine.connect() as connection:
            await connection.execute(
                text("INSERT INTO no_such_table (message) VALUES (:message)"),
                {"message": CHAT_TEXT},
            )
    assert CHAT_TEXT not in str(failed.value)
    assert CHAT_TEXT not in str(unavailable(failed.value))
    assert CHAT_TEXT not in caplog.text
    assert "INSERT INTO no_such_table" in str(failed.value)  # the statement is still named


async def test_uvicorn_answers_a_trailing_slash_without_the_forged_host(
    engine: AsyncEngine,
) -> None:
    """Over a real socket, a route plus a slash under Host: evil.example is a 404 that
    neither redirects nor names that host."""
    async with serving(container_on(engine)) as client:
        port = client.base_url.port
        for path in ("/v1/conversations/c1/messages/", "/v1/outbox/stats/", "/healthz/"):
            raw = (
                f"GET {path} HTTP/1.1\r\nHost: evil.example\r\n"
                f"Authorization: {ADMIN['Authorization']}\r\nConnection: close\r\n\r\n"
            ).encode()
            answer = await _raw_exchange(port or 80, raw)
            status_line = answer.split(b"\r\n", 1)[0]
            assert status_line.startswith(b"HTTP/1.1 404"), status_line
            assert b"evil.example" not in answer
            assert b"location:" not in answer.lower()


async def _raw_exchange(port: int, request: bytes) -> bytes:
    """Send `request` as bytes, exactly as an attacker would, and read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, family=socket.AF_INET)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer
