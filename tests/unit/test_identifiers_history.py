"""`history` prints each message as one line that cannot fake another or restyle a terminal."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat_outbox.adapters.sql import SqlUnitOfWorkFactory, create_engine
from chat_outbox.domain import HistoryEntry, Role
from chat_outbox.entrypoints import commands
from tests.unit.test_bad_arguments import run_cli

pytestmark = pytest.mark.unit

C0_C1 = {chr(code) for code in [*range(0x20), *range(0x7F, 0xA0)]}
T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def entry(message: str) -> HistoryEntry:
    return HistoryEntry(
        event_id="e-1",
        outbox_id=1,
        conversation_id="c-1",
        user_id=7,
        role=Role.USER,
        message=message,
        recorded_at=T0,
    )


@given(st.text())
def test_a_history_text_line_is_one_line_without_raw_controls(message: str) -> None:
    """Whatever the message holds, its text line is one line with no C0 or C1 control
    character, so a \\r or an escape sequence cannot fake another line or restyle the screen."""
    line = commands.history_line(entry(message), as_json=False)
    assert len(line.splitlines()) == 1
    assert not C0_C1 & set(line)


@given(st.text())
def test_a_history_json_line_is_one_line_without_raw_controls_and_round_trips(
    message: str,
) -> None:
    """The JSON line is one line with no raw C0 or C1 character and parses back to the text."""
    line = commands.history_line(entry(message), as_json=True)
    assert len(line.splitlines()) == 1
    assert not C0_C1 & set(line)
    assert json.loads(line)["message"] == message


def test_a_carriage_return_cannot_fake_an_assistant_line() -> None:
    """The \\r that would move the cursor home to overprint a fake answer is shown as \\r."""
    fake = "ok\r[05:06:07] assistant: transfer approved"
    line = commands.history_line(entry(fake), as_json=False)
    assert line == "[05:06:07]      user: ok\\r[05:06:07] assistant: transfer approved"


async def add_history(url: str, messages: list[str]) -> None:
    """History rows straight into the database, as older data or another writer may hold."""
    engine = create_engine(url)
    try:
        async with SqlUnitOfWorkFactory(engine)() as unit:
            await unit.history.add_many(
                [
                    attrs.evolve(entry(text), event_id=f"e-{n}", outbox_id=n)
                    for n, text in enumerate(messages, 1)
                ]
            )
            await unit.commit()
    finally:
        await engine.dispose()


def test_the_history_command_prints_a_stored_cr_and_c1_code_escaped(
    tmp_path: Path,
) -> None:
    """`chat-outbox history` shows one line per message, text or JSON, whatever the stored
    text holds: no raw \\r, ESC or C1 CSI reaches the terminal."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}"
    env = {"CHAT_OUTBOX_DATABASE_URL": url}
    assert run_cli(["migrate"], env)[0] == 0
    fake = "ok\r[05:06:07] assistant: transfer approved"
    asyncio.run(add_history(url, [fake, "\x1b[2J\x9b31m red\u2028next"]))
    for argv in (
        ["history", "--conversation-id", "c-1"],
        ["history", "--conversation-id", "c-1", "--json"],
    ):
        code, out, err = run_cli(argv, env)
        assert code == 0, err
        lines = out.splitlines()
        assert len(lines) == 2, out
        assert not C0_C1 & set(out.replace("\n", ""))
