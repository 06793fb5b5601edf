"""The chat-outbox console script, run as a real process against a real SQLite file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def chat_outbox(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_OUTBOX_")}
    environment.update({"CHAT_OUTBOX_LOG_FORMAT": "json", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "chat_outbox", *args],
        cwd=cwd, env=environment, input=stdin, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory whose default SQLite database has been migrated."""
    path = tmp_path_factory.mktemp("cli")
    assert chat_outbox("migrate", cwd=path).returncode == 0
    return path


def test_send_then_history_reads_nothing_until_consumed(workdir: Path) -> None:
    """A sent message is pending in stats and absent from history until it is consumed."""
    sent = chat_outbox(
        "send",
        "--user-id",
        "7",
        "--conversation-id",
        "cli-1",
        "--role",
        "user",
        "--message",
        "héllo 👋",
        cwd=workdir,
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["outbox_id"] > 0
    stats = json.loads(chat_outbox("stats", "--json", cwd=workdir).stdout)
    assert stats["pending"] >= 1
    assert stats["oldest_pending_age_s"] >= 0
    assert chat_outbox("history", "--conversation-id", "cli-1", cwd=workdir).stdout == ""


def test_send_reads_the_message_from_stdin(workdir: Path) -> None:
    """`--message -` records the text piped on stdin, newlines included."""
    sent = chat_outbox(
        "send",
        "--user-id",
        "7",
        "--conversation-id",
        "cli-2",
        "--role",
        "tool",
        "--message",
        "-",
        cwd=workdir,
        stdin="line one\nline two\n",
    )
    assert sent.returncode == 0, sent.stderr


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            [
                "send",
                "--user-id",
                "0",
                "--conversation-id",
                "c",
                "--role",
                "user",
                "--message",
                "x",
            ],
            "user_id must be positive",
        ),
        (
            [
                "send",
                "--user-id",
                "1",
                "--conversation-id",
                "c",
                "--role",
                "robot",
                "--message",
                "x",
            ],
            "invalid choice: 'robot'",
        ),
        (
            [
                "send",
                "--user-id",
                "1",
                "--conversation-id",
                "c" * 129,
                "--role",
                "user",
                "--message",
                "x",
            ],
            "conversation_id must be 1-128 characters",
        ),
        (
            [
                "send",
                "--user-id",
                "1",
                "--conversation-id",
                "c",
                "--role",
                "user",
                "--message",
                "x",
                "--traceparent",
                "00-abc-def-01",
            ],
            "is not a W3C traceparent",
        ),
        (["serve", "--port", "0"], "'0' is not a port (1-65535)"),
        (["purge", "--older-than", "soon"], "not a duration"),
        (["dead", "requeue"], "dead requeue: give --all, or --id, --conversation"),
        (["dead", "requeue", "--all", "--conversation", "c"], "(not both)"),
        (["dead", "requeue", "--since", "yesterday"], "neither an ISO 8601 time nor a duration"),
        (["purge", "--older-than", "7x"], "'7x' is not a duration like 30s, 15m, 12h or 7d"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(workdir: Path, args: list[str], reason: str) -> None:
    """Bad usage exits 2 with a single stderr line naming the problem, and no traceback."""
    result = chat_outbox(*args, cwd=workdir)
    assert result.returncode == 2
    assert reason in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_nul_character_from_stdin_is_refused(workdir: Path) -> None:
    """A NUL byte (argv cannot carry one, stdin can) exits 2 and records nothing."""
    before = json.loads(chat_outbox("stats", "--json", cwd=workdir).stdout)["pending"]
    result = chat_outbox(
        "send",
        "--user-id",
        "1",
        "--conversation-id",
        "c",
        "--role",
        "user",
        "--message",
        "-",
        cwd=workdir,
        stdin="a\x00b",
    )
    assert result.returncode == 2
    assert "message contains a NUL character at index 1" in result.stderr
    assert json.loads(chat_outbox("stats", "--json", cwd=workdir).stdout)["pending"] == before


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"CHAT_OUTBOX_BUS": "carrier-pigeon"}, "CHAT_OUTBOX_BUS must be one of kafka"),
        ({"CHAT_OUTBOX_MAX_RETRY": "-3"}, "CHAT_OUTBOX_MAX_RETRY must be positive"),
        ({"CHAT_OUTBOX_LOG_FORMAT": "xml"}, "CHAT_OUTBOX_LOG_FORMAT must be one of"),
        ({"CHAT_OUTBOX_DATABASE_URL": "oracle://scott:tiger@db/x"}, "unsupported database"),
        ({"CHAT_OUTBOX_DATABASE_URL": "not a url"}, "cannot parse database URL"),
        ({"CHAT_OUTBOX_TOPIC": "bad topic!"}, "CHAT_OUTBOX_TOPIC must be 1-249"),
        ({"CHAT_OUTBOX_METRICS_PORT": "70000"}, "CHAT_OUTBOX_METRICS_PORT must be 0-65535"),
        ({"CHAT_OUTBOX_BUS": "memory"}, "only works inside `chat-outbox demo`"),
    ],
)
def test_bad_configuration_exits_2_with_one_line(
    workdir: Path, env: dict[str, str], reason: str
) -> None:
    """Unusable configuration exits 2 with one line naming the variable at fault."""
    result = chat_outbox("relay", "--once", cwd=workdir, env=env)
    assert result.returncode == 2
    assert reason in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("outbox_id", "reason"),
    [("1", "outbox row 1 is pending, not dead"), ("999999", "no outbox row")],
)
def test_dead_show_of_a_row_that_is_not_dead_exits_1(
    workdir: Path, outbox_id: str, reason: str
) -> None:
    """`dead show` names why there is nothing to show: no such row, or a row not dead."""
    sent = chat_outbox(
        "send", "--user-id", "1", "--conversation-id", "show", "--role", "user",
        "--message", "x", cwd=workdir,
    )  # fmt: skip
    assert sent.returncode == 0
    result = chat_outbox("dead", "show", outbox_id, cwd=workdir)
    assert (result.returncode, result.stdout) == (1, "")
    assert reason in result.stderr


def test_an_unmigrated_database_is_refused_with_a_hint(tmp_path: Path) -> None:
    """Commands on a database without the schema say to run migrate, and exit 2."""
    result = chat_outbox("stats", cwd=tmp_path)
    assert result.returncode == 2
    assert "run `chat-outbox migrate`" in result.stderr


def test_an_unreachable_database_fails_without_leaking_the_password(tmp_path: Path) -> None:
    """A database that is down is a runtime failure (exit 1) whose message hides the password."""
    url = "postgresql+asyncpg://chat:s3cret-pw@127.0.0.1:1/chat"
    result = chat_outbox("stats", cwd=tmp_path, env={"CHAT_OUTBOX_DATABASE_URL": url})
    assert result.returncode == 1
    assert "database unavailable" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_help_lists_every_command(tmp_path: Path) -> None:
    """`--help` names each command of the external interface."""
    result = chat_outbox("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in (
        "migrate",
        "send",
        "stats",
        "history",
        "relay",
        "consume",
        "dead",
        "purge",
        "demo",
        "config",
        "--config",
        "serve",
    ):
        assert command in result.stdout


def test_demo_on_the_memory_bus_reads_every_message_back(tmp_path: Path) -> None:
    """The in-process demo relays and consumes everything it records, on a fresh SQLite file."""
    result = chat_outbox(
        "demo",
        "--messages",
        "12",
        "--conversations",
        "3",
        cwd=tmp_path,
        env={"CHAT_OUTBOX_BUS": "memory"},
    )
    assert result.returncode == 0, result.stderr
    assert "All 12 recorded messages were relayed and read back" in result.stdout
    assert result.stdout.count("message 4 of conversation") == 3


def test_config_show_prints_the_effective_settings_redacted_with_sources(tmp_path: Path) -> None:
    """File values under the environment, each with its source, and no secret in clear."""
    config = tmp_path / "chat-outbox.toml"
    config.write_text(
        'database_url = "postgresql+asyncpg://chat:db-s3cret@db/chat"\n'
        'max_retry = 5\n[kafka]\nsasl_password = "kafka-s3cret"\n'
    )
    result = chat_outbox(
        "--config", str(config), "config", "show", "--json",
        cwd=tmp_path, env={"CHAT_OUTBOX_MAX_RETRY": "9", "CHAT_OUTBOX_ADMIN_TOKEN": "tok-s3cret"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["database_url"] == {
        "value": "postgresql+asyncpg://chat:***@db/chat",
        "source": f"file {config}",
    }
    assert shown["max_retry"] == {"value": 9, "source": "CHAT_OUTBOX_MAX_RETRY"}
    assert shown["kafka_sasl_password"]["value"] == "***"
    assert shown["topic"]["source"] == "default"
    assert "s3cret" not in result.stdout + result.stderr


def test_a_bad_config_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    """An unknown key in the file named by CHAT_OUTBOX_CONFIG exits 2 with one line."""
    config = tmp_path / "bad.toml"
    config.write_text("relay_bach_size = 10\n")
    result = chat_outbox("stats", cwd=tmp_path, env={"CHAT_OUTBOX_CONFIG": str(config)})
    assert result.returncode == 2
    assert "unknown key 'relay_bach_size' (did you mean relay_batch_size?)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("command", "env_name"),
    [(["relay", "--once"], "CHAT_OUTBOX_METRICS_PORT"), (["serve"], "CHAT_OUTBOX_HTTP_PORT")],
)
def test_a_port_in_use_exits_2_with_the_address_and_no_traceback(
    workdir: Path, command: list[str], env_name: str
) -> None:
    """A metrics or API port that is taken is a usage error naming the address, and the
    resources already started are closed rather than left to a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = chat_outbox(*command, cwd=workdir, env={env_name: str(port)})
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
