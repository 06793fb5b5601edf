"""Run the HTTP API on a free loopback port, in this test's event loop, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx

from chat_outbox.entrypoints.containers import ApiContainer
from chat_outbox.entrypoints.http import create_app
from chat_outbox.entrypoints.http.server import server_for

ADMIN_TOKEN = "integration-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(container: ApiContainer) -> AsyncIterator[httpx.AsyncClient]:
    """uvicorn serving create_app(container); a client for it; a graceful stop after."""
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that say TCP,
    # and without it every response waits ~40 ms for a delayed ACK (Nagle).
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = server_for(create_app(container), "127.0.0.1", port)
    task = asyncio.create_task(server.serve(sockets=[listener]), name="uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        listener.close()
