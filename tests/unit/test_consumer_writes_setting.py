"""How many batches a consumer writes at once follows CHAT_OUTBOX_CONSUMER_WRITES and the
database."""

from __future__ import annotations

import pytest

from chat_outbox.entrypoints.config import ConfigError, Settings

pytestmark = pytest.mark.unit

POSTGRES = "postgresql+asyncpg://app@db.example/app"
MARIADB = "mysql+asyncmy://app@db.example/app"
SQLITE = "sqlite+aiosqlite:///outbox.sqlite3"


@pytest.mark.parametrize(
    ("url", "writes", "at_once"),
    [
        (POSTGRES, "", 3),
        (MARIADB, "auto", 3),
        (SQLITE, "", 1),
        (SQLITE, "3", 3),
        (POSTGRES, "1", 1),
    ],
)
def test_consumers_write_three_batches_at_once_except_on_sqlite(
    url: str, writes: str, at_once: int
) -> None:
    """auto writes three batches at once, one on SQLite (one writer at a time there); an
    explicit number wins."""
    env = {"CHAT_OUTBOX_DATABASE_URL": url, "CHAT_OUTBOX_CONSUMER_WRITES": writes}
    assert Settings.from_env(env).consumer_writes_at_once == at_once


@pytest.mark.parametrize("writes", ["0", "-1", "two"])
def test_a_bad_consumer_writes_value_is_refused_naming_the_choices(writes: str) -> None:
    """Zero, negatives and words other than auto are a configuration error."""
    with pytest.raises(ConfigError, match="CONSUMER_WRITES must be auto or a positive whole"):
        Settings.from_env({"CHAT_OUTBOX_CONSUMER_WRITES": writes})
