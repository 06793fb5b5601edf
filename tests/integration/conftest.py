"""Integration fixtures: every SQL test runs on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clock import SystemClock, uuid4_event_id
from adapters.kafka import KafkaOptions
from adapters.kafka.local_broker import LocalBroker
from adapters.sql import SqlUnitOfWorkFactory
from tests.integration.databases import BACKENDS, fresh_migrated_engine, truncate, url_for


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
