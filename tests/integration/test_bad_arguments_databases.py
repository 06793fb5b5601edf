"""Numbers and moments past what a database column holds stop the CLI with exit 2 and one
line on every database, before any statement runs (subprocess: the real entry point)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_cli import chat_outbox

pytestmark = pytest.mark.integration

PAST_64_BITS = str(2**64)


@pytest.mark.parametrize(
    "args",
    [
        ["history", "--conversation-id", "c", "--limit", PAST_64_BITS],
        ["history", "--conversation-id", "c", "--limit", "-1"],
        ["dead", "show", PAST_64_BITS],
        ["dead", "requeue", "--id", str(2**63)],
        ["dead", "requeue", "--since", "0001-01-01T00:00:00+01:00"],
        ["dead", "list", "--until", "9999-12-31T23:59:59-14:00"],
    ],
)
def test_an_argument_past_the_columns_range_exits_2_with_one_line(
    engine: AsyncEngine, tmp_path: Path, args: list[str]
) -> None:
    """An id past 64 bits, a negative limit or a moment past year 1 or 9999 in UTC is a
    usage error on SQLite, PostgreSQL and MariaDB alike, not a driver overflow."""
    url = engine.url.render_as_string(hide_password=False)
    result = chat_outbox(*args, cwd=tmp_path, env={"CHAT_OUTBOX_DATABASE_URL": url})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""
