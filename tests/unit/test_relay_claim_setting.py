"""How a relay claims rows follows CHAT_OUTBOX_RELAY_CLAIM and the database."""

from __future__ import annotations

import pytest
from dependency_injector import providers

from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory, create_engine
from chat_outbox.adapters.sql.claims import LeasedClaims, LockedClaims
from chat_outbox.application.ports import OutboxClaims
from chat_outbox.entrypoints.config import ConfigError, Settings
from chat_outbox.entrypoints.containers import RelayContainer

pytestmark = pytest.mark.unit

POSTGRES = "postgresql+asyncpg://app@db.example/app"
MARIADB = "mysql+asyncmy://app@db.example/app"
SQLITE = "sqlite+aiosqlite:///outbox.sqlite3"


@pytest.mark.parametrize(
    ("url", "claim", "locks"),
    [
        (POSTGRES, "", True),
        (MARIADB, "", False),
        (SQLITE, "", False),
        (POSTGRES, "lease", False),
        (MARIADB, "lock", True),
    ],
)
def test_relay_locks_claims_by_default_on_postgresql_only(
    url: str, claim: str, locks: bool
) -> None:
    """auto locks on PostgreSQL and leases elsewhere; an explicit choice wins."""
    env = {"CHAT_OUTBOX_DATABASE_URL": url, "CHAT_OUTBOX_RELAY_CLAIM": claim}
    assert Settings.from_env(env).relay_locks_claims is locks


def test_locking_claims_on_sqlite_are_refused_with_the_reason() -> None:
    """SQLite has no row locks, so asking for them is a configuration error naming why."""
    env = {"CHAT_OUTBOX_DATABASE_URL": SQLITE, "CHAT_OUTBOX_RELAY_CLAIM": "lock"}
    with pytest.raises(ConfigError, match="RELAY_CLAIM=lock needs row locks"):
        Settings.from_env(env)


def test_an_unknown_claim_mode_is_refused() -> None:
    """Only auto, lock and lease are accepted."""
    with pytest.raises(ConfigError, match="CHAT_OUTBOX_RELAY_CLAIM"):
        Settings.from_env({"CHAT_OUTBOX_RELAY_CLAIM": "grab"})


@pytest.mark.parametrize(
    ("bus", "timeout_variable"),
    [("kafka", "KAFKA_REQUEST_TIMEOUT_MS"), ("rabbitmq", "RABBITMQ_CONFIRM_TIMEOUT_MS")],
)
def test_a_lease_too_short_for_a_publish_is_refused_with_lock_claims(
    bus: str, timeout_variable: str
) -> None:
    """The database would end every batch's transaction after its publish, so lock claims
    need a lease of at least three publish timeouts."""
    env = {
        "CHAT_OUTBOX_DATABASE_URL": POSTGRES,
        "CHAT_OUTBOX_BUS": bus,
        "CHAT_OUTBOX_RELAY_LEASE_SECONDS": "5",
        f"CHAT_OUTBOX_{timeout_variable}": "10000",
    }
    with pytest.raises(ConfigError, match=f"too short for lock claims.*{timeout_variable}"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "CHAT_OUTBOX_RELAY_CLAIM": "lease"}).relay.lease_seconds == 5


@pytest.mark.parametrize(
    ("url", "lanes", "at_once"),
    [
        (POSTGRES, "", 2),
        (MARIADB, "auto", 1),
        (SQLITE, "", 1),
        (POSTGRES, "1", 1),
        (MARIADB, "3", 3),
    ],
)
def test_a_relay_runs_two_lanes_when_its_claims_lock(url: str, lanes: str, at_once: int) -> None:
    """auto: two lanes with lock claims (they share the conversations out), one with leases;
    an explicit number wins."""
    env = {"CHAT_OUTBOX_DATABASE_URL": url, "CHAT_OUTBOX_RELAY_LANES": lanes}
    assert Settings.from_env(env).relay_lanes_at_once == at_once


@pytest.mark.parametrize(
    ("lanes", "reason"),
    [("0", "auto or a positive whole number"), ("two", "auto or a positive"), ("9", "at most 8")],
)
def test_a_bad_relay_lanes_value_is_refused_with_the_reason(lanes: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=f"RELAY_LANES must be {reason}"):
        Settings.from_env({"CHAT_OUTBOX_RELAY_LANES": lanes})


@pytest.mark.parametrize(
    ("url", "claim", "expected"),
    [(POSTGRES, "", LockedClaims), (POSTGRES, "lease", LeasedClaims), (SQLITE, "", LeasedClaims)],
)
def test_the_relay_container_picks_the_claims_the_settings_ask_for(
    url: str, claim: str, expected: type[OutboxClaims]
) -> None:
    """Locked claims share the conversations out through the roster; leased ones carry the
    configured lease."""
    env = {"CHAT_OUTBOX_DATABASE_URL": url, "CHAT_OUTBOX_RELAY_CLAIM": claim}
    container = RelayContainer(settings=Settings.from_env(env))
    container.core.uow.override(providers.Object(SqlUnitOfWorkFactory(create_engine(url))))
    container.bus.override(providers.Object(InMemoryBus()))
    relay = container.relay()
    assert type(relay.claims) is expected
    assert relay.claims is not container.relay().claims  # each lane has its own
