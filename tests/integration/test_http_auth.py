"""Message-route authentication, history byte budget and slow-client limits over real HTTP
and real databases; `serve`'s refusal to expose an unauthenticated API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
from dependency_injector import providers
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.tables import outbox_messages
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.containers import ApiContainer
from chat_outbox.entrypoints.http import create_app
from chat_outbox.entrypoints.http.server import server_for
from tests.integration.http_helpers import free_port
from tests.integration.test_http_server import deliver, text_of, until_up

pytestmark = pytest.mark.integration

SECRET = "integration-jwt-secret-of-32-bytes-or-more"
ALICE, BOB = 41, 42


def as_user(user: int) -> dict[str, str]:
    claims = {"sub": str(user), "exp": int(time.time()) + 300}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


def message(user: int, text: str = "hello") -> dict[str, object]:
    return {"user_id": user, "role": "user", "message": text}


def settings_on(engine: AsyncEngine, **values: object) -> Settings:
    url = engine.url.render_as_string(hide_password=False)
    return Settings.of(database_url=url, bus="memory", **values)


@contextlib.asynccontextmanager
async def served(engine: AsyncEngine, settings: Settings) -> AsyncIterator[tuple[str, int]]:
    """uvicorn with `settings`' limits on the test's engine; its loopback address."""
    container = ApiContainer(settings=settings)
    container.core.engine.override(providers.Object(engine))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = server_for(create_app(container), "127.0.0.1", port, settings)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        listener.close()


def client_for(address: tuple[str, int]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://{address[0]}:{address[1]}", timeout=10)


async def test_a_conversation_is_its_first_writers_on_every_database(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Bob gets 404 reading or writing Alice's conversation while her first message is
    pending, once it is in history, and after the outbox row is purged."""
    path = "/v1/conversations/owned/messages"
    async with (
        served(engine, settings_on(engine, auth_jwt_secret=SECRET)) as address,
        client_for(address) as client,
    ):
        first = await client.post(path, json=message(ALICE), headers=as_user(ALICE))
        assert first.status_code == 202, first.text
        for stage in ("pending", "consumed", "purged"):
            if stage == "consumed":
                await deliver(uow, InMemoryBus())
            if stage == "purged":
                async with engine.begin() as connection:
                    await connection.execute(delete(outbox_messages))
            read = await client.get(path, headers=as_user(BOB))
            write = await client.post(path, json=message(BOB), headers=as_user(BOB))
            assert (read.status_code, write.status_code) == (404, 404), stage
            own = await client.get(path, headers=as_user(ALICE))
            assert own.status_code == 200, stage
        again = await client.post(path, json=message(ALICE, "again"), headers=as_user(ALICE))
        assert again.status_code == 202, again.text


async def test_a_history_page_stops_at_the_byte_budget_on_every_database(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Twenty 20 KB messages under a 64 KB budget come back three at a time, all of them,
    in order, each response within the budget."""
    budget = 64 * 1024
    texts = [f"{n:02d}" + "é" * 10_000 for n in range(20)]
    async with (
        served(engine, settings_on(engine, http_max_response_bytes=budget)) as address,
        client_for(address) as client,
    ):
        for text in texts:
            response = await client.post("/v1/conversations/big/messages", json=message(1, text))
            assert response.status_code == 202
        await deliver(uow, InMemoryBus())
        seen: list[str] = []
        after: int | None = 0
        while after is not None:
            response = await client.get(
                "/v1/conversations/big/messages", params={"after": after, "limit": 1000}
            )
            assert len(response.content) <= budget
            page = response.json()
            assert len(page["messages"]) == 3 or page["next_after"] is None
            seen += [m["message"] for m in page["messages"]]
            after = page["next_after"]
    assert seen == texts


@pytest.mark.parametrize("migrated_engine", ["sqlite"], indirect=True)
async def test_slow_headers_and_bodies_are_cut_off(engine: AsyncEngine) -> None:
    """A client that never finishes its headers is disconnected, and one that stalls its
    body gets a 408, each after the configured timeout."""
    limits = {"http_header_timeout_seconds": 0.5, "http_body_timeout_seconds": 0.5}
    async with served(engine, settings_on(engine, **limits)) as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and no blank line, ever
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()

        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /v1/conversations/slow/messages HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user_id"'
        )
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request body not received in time" in answer


@pytest.mark.parametrize("migrated_engine", ["sqlite"], indirect=True)
async def test_connections_beyond_the_limit_get_503(engine: AsyncEngine) -> None:
    """With HTTP_MAX_CONNECTIONS=2 and two connections open, a third request is a 503."""
    async with served(engine, settings_on(engine, http_max_connections=2)) as (host, port):
        held = [await asyncio.open_connection(host, port) for _ in range(2)]
        await asyncio.sleep(0.1)
        async with client_for((host, port)) as client:
            response = await client.get("/healthz")
        for _, writer in held:
            writer.close()
    assert response.status_code == 503


def serve_command(engine: AsyncEngine, port: int, *extra: str) -> tuple[list[str], dict[str, str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHAT_OUTBOX_")}
    env["CHAT_OUTBOX_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    env["CHAT_OUTBOX_BUS"] = "memory"
    command = [sys.executable, "-m", "chat_outbox", "serve", "--host", "0.0.0.0"]
    return [*command, "--port", str(port), *extra], env


@pytest.mark.parametrize("migrated_engine", ["sqlite"], indirect=True)
async def test_serve_refuses_a_public_address_without_auth_in_one_line(
    engine: AsyncEngine,
) -> None:
    """`serve --host 0.0.0.0` without authentication exits 2 with one line naming the fix."""
    command, env = serve_command(engine, free_port())
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2, stderr
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("chat-outbox: error: refusing to serve on 0.0.0.0")
    assert "--insecure-no-auth" in lines[0]
    assert "CHAT_OUTBOX_AUTH_JWT_SECRET" in lines[0]


@pytest.mark.parametrize("migrated_engine", ["sqlite"], indirect=True)
@pytest.mark.parametrize("how", ["insecure-no-auth", "auth"])
async def test_serve_starts_on_a_public_address_when_told_or_authenticated(
    engine: AsyncEngine, tmp_path: Path, how: str
) -> None:
    """With --insecure-no-auth, or with a JWT secret set, `serve --host 0.0.0.0` answers,
    and stops with exit 0 on SIGTERM."""
    port = free_port()
    command, env = serve_command(engine, port)
    if how == "auth":
        env["CHAT_OUTBOX_AUTH_JWT_SECRET"] = SECRET
    else:
        command.append("--insecure-no-auth")
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=output, stderr=output
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await until_up(client, process, log)
            response = await client.get("/v1/conversations/c/messages")
        assert response.status_code == (401 if how == "auth" else 200), response.text
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0, text_of(log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
