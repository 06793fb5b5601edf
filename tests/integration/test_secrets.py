"""Database and broker passwords never reach stdout, stderr or the logs, even at debug level."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chat_outbox.entrypoints.local_broker import free_loopback_port

pytestmark = pytest.mark.integration

DB_SECRET = "pw-CANARY-db-7f3a"
KAFKA_SECRET = "pw-CANARY-kafka-91c2"
SEND = ["send", "--user-id", "1", "--conversation-id", "c", "--role", "user", "--message", "hi"]
COMMANDS = [
    ["stats"],
    ["stats", "--json"],
    ["history", "--conversation-id", "c"],
    ["dead", "list"],
    SEND,
    ["relay", "--once"],
    ["consume", "--idle-exit", "1"],
]


def run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_OUTBOX_")}
    environment.update({"CHAT_OUTBOX_LOG_FORMAT": "json", "CHAT_OUTBOX_LOG_LEVEL": "debug"})
    environment.update(env)
    try:
        return subprocess.run(
            [sys.executable, "-m", "chat_outbox", *args],
            cwd=cwd, env=environment, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
    except subprocess.TimeoutExpired as hung:
        # Say where it hung: the process's last log lines, not only that it timed out.
        tail = (hung.stderr or b"")[-3000:]
        text = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        raise AssertionError(f"{' '.join(args)} hung for 90 s; stderr ends:\n{text}") from None


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_an_unreachable_database_never_shows_its_password(
    tmp_path: Path, command: list[str]
) -> None:
    """Every command against a database that refuses connections fails (exit 1) with the
    password absent from stdout and stderr, debug logs of SQLAlchemy and asyncpg included."""
    url = f"postgresql+asyncpg://chat:{DB_SECRET}@127.0.0.1:{free_loopback_port()}/chat"
    result = run(tmp_path, {"CHAT_OUTBOX_DATABASE_URL": url}, *command)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "database unavailable" in result.stderr
    assert DB_SECRET not in result.stdout + result.stderr


def test_a_password_in_a_malformed_url_is_not_echoed(tmp_path: Path) -> None:
    """A URL whose password landed where the port goes exits 2 with one line that quotes
    none of it (SQLAlchemy's own error would quote the would-be port)."""
    url = f"postgresql+asyncpg://chat@db.internal:{DB_SECRET}/chat"
    result = run(tmp_path, {"CHAT_OUTBOX_DATABASE_URL": url}, "stats")
    assert result.returncode == 2
    assert "cannot parse database URL: the port is not a number" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert DB_SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("command", [["relay", "--once"], ["consume", "--idle-exit", "2"]])
def test_the_broker_sasl_password_never_shows(tmp_path: Path, command: list[str]) -> None:
    """Relay and consumer with SASL credentials and no broker to talk to log their failures
    at debug level without the SASL password, and stats shows no credentials either."""
    env = {
        "CHAT_OUTBOX_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'secrets.sqlite3'}",
        "CHAT_OUTBOX_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_loopback_port()}",
        "CHAT_OUTBOX_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CHAT_OUTBOX_KAFKA_SASL_USERNAME": "chat",
        "CHAT_OUTBOX_KAFKA_SASL_PASSWORD": KAFKA_SECRET,
        "CHAT_OUTBOX_KAFKA_REQUEST_TIMEOUT_MS": "2000",
    }
    assert run(tmp_path, env, "migrate").returncode == 0
    assert run(tmp_path, env, *SEND).returncode == 0
    result = run(tmp_path, env, *command)
    stats = run(tmp_path, env, "stats", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "127.0.0.1" in result.stderr  # the failures were logged, naming the broker
    for output in (result.stdout, result.stderr, stats.stdout, stats.stderr):
        assert KAFKA_SECRET not in output
