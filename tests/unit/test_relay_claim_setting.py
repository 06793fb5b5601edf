"""How a relay claims rows follows CHAT_OUTBOX_RELAY_CLAIM and the database."""

from __future__ import annotations

import pytest

from entrypoints.config import ConfigError, Settings

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
