"""`--handlers` given a path that names no registry: a one-line usage error (exit 2) before
anything connects, from `relay` and from `consume`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_cli import chat_outbox

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("command", ["relay", "consume"])
@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("no_such_package.events:registry", "cannot import 'no_such_package.events'"),
        ("tests.integration.event_registry:missing", "must be a chat_outbox.EventRegistry"),
        ("not a path", "--handlers must look like package.module:name"),
    ],
)
def test_a_bad_handlers_path_is_a_one_line_usage_error(
    command: str, path: str, says: str, tmp_path: Path
) -> None:
    result = chat_outbox(
        command,
        "--handlers",
        path,
        cwd=Path.cwd(),
        env={
            "CHAT_OUTBOX_BUS": "kafka",
            "CHAT_OUTBOX_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db",
        },
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("chat-outbox: error: "), line
    assert says in line, line
