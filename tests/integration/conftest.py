"""Integration fixtures: every SQL test runs on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aio_pika
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.kafka import KafkaOptions
from chat_outbox.adapters.rabbitmq import redact
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.entrypoints.local_broker import LocalBroker
from tests.integration.databases import (
    BACKENDS,
    drop_run_databases,
    fresh_migrated_engine,
    truncate,
    url_for,
)
from tests.integration.kafka_helpers import unique_names
from tests.integration.processes import Launcher
from tests.integration.vhosts import create_run_vhost, delete_run_vhosts

if TYPE_CHECKING:
    from tests.integration.buses import BusHarness


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the server databases named after this run (and those of gone runs): each run
    has its own, so that two runs at once never truncate each other's rows."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    loop = asyncio.new_event_loop()  # the session's loop is closed by now
    try:
        dropped = loop.run_until_complete(drop_run_databases())
        if not os.environ.get(EXTERNAL_RABBITMQ):
            dropped += delete_run_vhosts()
    except Exception as error:  # noqa: BLE001 - a clean-up failure must not hide the results
        if reporter is not None:
            reporter.write_line(f"could not drop this run's test databases: {error!r}")
        return
    finally:
        loop.close()
    if dropped and reporter is not None and session.config.option.verbose > 0:
        reporter.write_line(f"dropped test databases: {', '.join(sorted(dropped))}")


@pytest.fixture(scope="session")
def database_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("databases")


@pytest.fixture(scope="session", params=BACKENDS)
async def migrated_engine(
    request: pytest.FixtureRequest, database_dir: Path
) -> AsyncIterator[AsyncEngine]:
    url = url_for(request.param, database_dir)
    try:
        engine = await fresh_migrated_engine(url)
    except Exception as error:  # noqa: BLE001 - turn a missing server into a clear failure
        pytest.fail(
            f"{request.param} is not usable at {url.split('@')[-1]}: {error}. "
            "Run `make services` to start the local databases."
        )
    yield engine
    await engine.dispose()


@pytest.fixture
async def engine(migrated_engine: AsyncEngine) -> AsyncEngine:
    """A migrated database with empty tables: each test starts from nothing."""
    await truncate(migrated_engine)
    return migrated_engine


@pytest.fixture
def uow(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(engine)


@pytest.fixture
def clock() -> SystemClock:
    return SystemClock()


@pytest.fixture
def event_ids() -> object:
    return uuid4_event_id


EXTERNAL_KAFKA = "CHAT_OUTBOX_TEST_KAFKA_BOOTSTRAP"


@pytest.fixture(scope="session")
async def kafka_bootstrap() -> AsyncIterator[str]:
    """A Kafka-protocol broker: the cluster named by CHAT_OUTBOX_TEST_KAFKA_BOOTSTRAP, or
    a local Tansu broker started for this test session."""
    external = os.environ.get(EXTERNAL_KAFKA)
    if external:
        yield external
        return
    async with LocalBroker() as broker:
        yield broker.bootstrap_servers


EXTERNAL_RABBITMQ = "CHAT_OUTBOX_TEST_RABBITMQ_URL"


@pytest.fixture(scope="session")
async def rabbitmq_url() -> str:
    """The RabbitMQ vhost the tests use: CHAT_OUTBOX_TEST_RABBITMQ_URL's, or one of this
    run's own on the local broker, deleted with its queues when the run ends."""
    url = os.environ.get(EXTERNAL_RABBITMQ) or ""
    if not url:
        try:
            url = create_run_vhost()
        except (OSError, subprocess.SubprocessError) as error:
            pytest.fail(f"cannot make a RabbitMQ vhost with rabbitmqctl: {error!r}")
    try:
        connection = await aio_pika.connect(url, timeout=5)
    except Exception as error:  # noqa: BLE001 - turn a missing broker into a clear failure
        pytest.fail(
            f"RabbitMQ is not usable at {redact(url)}: {error!r}. "
            "Run `make services` to start it and create the test vhost."
        )
    await connection.close()
    return url


def fast_kafka_options(bootstrap: str, **overrides: object) -> KafkaOptions:
    """Client options with the short group timeouts that keep rebalances near 3 s."""
    defaults: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "request_timeout_ms": 5000,
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 500,
        "rebalance_timeout_ms": 2000,
        "fetch_max_wait_ms": 10,
    }
    return KafkaOptions(**{**defaults, **overrides})  # type: ignore[arg-type]


BUS_NAMES = ("memory", "kafka", "rabbitmq")
"""Every bus adapter the contract suite runs against (tests/integration/buses.py)."""


@pytest.fixture(params=BUS_NAMES)
def bus_endpoint(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A bus adapter's name and where its broker is; the broker starts only when needed.
    Narrow it with @pytest.mark.parametrize("bus_endpoint", [...], indirect=True)."""
    name: str = request.param
    if name == "kafka":
        return name, request.getfixturevalue("kafka_bootstrap")
    if name == "rabbitmq":
        return name, request.getfixturevalue("rabbitmq_url")
    return name, ""


@pytest.fixture
async def bus_harness(bus_endpoint: tuple[str, str]) -> AsyncIterator[BusHarness]:
    """The adapter named by `bus_endpoint` on a topic of its own, closed after the test."""
    from tests.integration.buses import harness_for  # buses.py imports this module

    harness = harness_for(*bus_endpoint)
    yield harness
    await harness.close()


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
