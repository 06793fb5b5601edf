"""`chat-outbox relay` and `chat-outbox consume` as real processes against the real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock
from chat_outbox.adapters.kafka import KafkaBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.operate.operations import read_history
from tests.integration.conftest import fast_kafka_options
from tests.integration.kafka_helpers import (
    all_consumed,
    conversation_ids,
    count_by_status,
    eventually,
    history_event_ids,
    on_sqlite_and_postgresql,
    record_round_robin,
    relay_everything,
    unique_names,
)
from tests.integration.relays import leasing_relay

pytestmark = [pytest.mark.integration, on_sqlite_and_postgresql]

EXIT_WITHIN_S = 15.0
LOG_TAIL_BYTES = 3000


@attrs.define
class Spawned:
    """A `python -m chat_outbox ...` child whose stdout and stderr go to a log file."""

    name: str
    process: asyncio.subprocess.Process
    log: Path
    stopping: bool = False

    def tail(self) -> str:
        return self.log.read_bytes()[-LOG_TAIL_BYTES:].decode(errors="replace")

    async def exit_code(self, within: float = EXIT_WITHIN_S) -> int:
        """Its exit code; fail with its log if it is still running after `within` seconds."""
        try:
            return await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            pytest.fail(f"`{self.name}` still ran after {within:.0f} s; log:\n{self.tail()}")

    def stop(self) -> None:
        self.stopping = True
        self.process.send_signal(signal.SIGTERM)


@attrs.define
class Launcher:
    env: dict[str, str]
    log_dir: Path
    started: list[Spawned] = attrs.Factory(list)

    async def spawn(self, *command: str) -> Spawned:
        log = self.log_dir / f"{len(self.started)}-{'-'.join(command)}.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "chat_outbox",
                *command,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
            )
        spawned = Spawned(" ".join(command), process, log)
        self.started.append(spawned)
        return spawned

    async def consumed_while_running(self, engine: AsyncEngine, expected: int) -> bool:
        """Whether `expected` rows are consumed; fails with the log of any child that died."""
        for spawned in self.started:
            code = spawned.process.returncode
            if code is not None and not spawned.stopping:
                pytest.fail(f"`{spawned.name}` exited with {code}; log:\n{spawned.tail()}")
        return await all_consumed(engine, expected)

    async def kill_leftovers(self) -> None:
        for spawned in self.started:
            if spawned.process.returncode is None:
                spawned.process.kill()
                await spawned.process.wait()


@pytest.fixture
async def launcher(
    engine: AsyncEngine, kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[Launcher]:
    """Spawns CLI processes on the test's database and broker, with a topic and group of
    their own and the local broker's fast-rebalance tuning."""
    topic, group = unique_names("proc")
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHAT_OUTBOX_")}
    env.update(
        {
            "CHAT_OUTBOX_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "CHAT_OUTBOX_BUS": "kafka",
            "CHAT_OUTBOX_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "CHAT_OUTBOX_TOPIC": topic,
            "CHAT_OUTBOX_CONSUMER_GROUP": group,
            "CHAT_OUTBOX_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "CHAT_OUTBOX_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "CHAT_OUTBOX_KAFKA_REBALANCE_TIMEOUT_MS": "2000",
            "CHAT_OUTBOX_KAFKA_FETCH_MAX_WAIT_MS": "10",
            "CHAT_OUTBOX_RELAY_POLL_INTERVAL": "0.05",
            "CHAT_OUTBOX_LOG_FORMAT": "json",
        }
    )
    spawner = Launcher(env, tmp_path)
    try:
        yield spawner
    finally:
        await spawner.kill_leftovers()


async def test_relay_and_consumer_processes_stopped_mid_stream_lose_and_duplicate_nothing(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, launcher: Launcher
) -> None:
    """Both processes exit 0 on SIGTERM while messages flow, and after a restart every
    recorded message is in chat history once, in recording order."""
    topic = launcher.env["CHAT_OUTBOX_TOPIC"]
    conversations = conversation_ids(f"proc-{topic[-6:]}", 12)
    waves: list[dict[str, list[str]]] = []

    relay, consumer = await launcher.spawn("relay"), await launcher.spawn("consume")
    waves.append(await record_round_robin(uow, topic, conversations, 200))
    await eventually(lambda: launcher.consumed_while_running(engine, 1), "a consumed row", 60)
    trickle = asyncio.create_task(
        record_round_robin(uow, topic, conversations, 200, start=200, batch=10, pause=0.02)
    )
    await asyncio.sleep(0.2)
    relay.stop()
    consumer.stop()
    waves.append(await trickle)
    assert await relay.exit_code() == 0, relay.tail()
    assert await consumer.exit_code() == 0, consumer.tail()

    relay, consumer = await launcher.spawn("relay"), await launcher.spawn("consume")
    waves.append(await record_round_robin(uow, topic, conversations, 200, start=400))
    await eventually(lambda: launcher.consumed_while_running(engine, 600), "600 consumed", 90)
    relay.stop()
    consumer.stop()
    assert await relay.exit_code() == 0, relay.tail()
    assert await consumer.exit_code() == 0, consumer.tail()

    history = await history_event_ids(engine)
    assert len(history) == len(set(history)) == 600
    assert await count_by_status(engine) == {"consumed": 600}
    for conversation in conversations:
        entries = await read_history(uow, conversation)
        assert [e.message for e in entries] == [text for w in waves for text in w[conversation]]


async def test_consume_with_idle_exit_persists_what_is_there_then_exits_zero(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, launcher: Launcher, kafka_bootstrap: str
) -> None:
    """`consume --idle-exit 2` persists the records waiting in the topic, then exits 0 on
    its own once nothing more comes."""
    topic = launcher.env["CHAT_OUTBOX_TOPIC"]
    await record_round_robin(uow, topic, conversation_ids(f"idle-{topic[-6:]}", 4), 20)
    bus = KafkaBus(fast_kafka_options(kafka_bootstrap), provision_topic=topic)
    try:
        assert (await relay_everything(leasing_relay(uow, bus, SystemClock()))).published == 20
    finally:
        await bus.close()

    consumer = await launcher.spawn("consume", "--idle-exit", "2")

    assert await consumer.exit_code(within=60) == 0, consumer.tail()
    assert await count_by_status(engine) == {"consumed": 20}, consumer.tail()
    assert len(set(await history_event_ids(engine))) == 20
