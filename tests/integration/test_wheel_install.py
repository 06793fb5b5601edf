"""The built wheel as a guest in a host application: one top-level package with its
migrations and extras, installed into a clean virtual environment and run beside a host's
own `domain` package, SQLAlchemy tables, Alembic history and transactions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import pytest

from chat_outbox.adapters.sql.migrate import HEAD

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = {"postgres", "mysql", "kafka", "rabbitmq", "http", "otel", "all"}
MIGRATIONS = "chat_outbox/adapters/sql/migrations/"
HOST_VALUE = "host's own"

HOST_ENV = """
from alembic import context
from sqlalchemy import create_engine

with create_engine(context.config.get_main_option("sqlalchemy.url")).begin() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""
HOST_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "host0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "orders", sa.Column("id", sa.Integer, primary_key=True), sa.Column("item", sa.String(50))
    )
"""
HOST_APP = """
import asyncio, json, sys
from pathlib import Path

import domain
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import chat_outbox
from chat_outbox import ChatMessage, Outbox, Role, Settings

DATABASE = Path("host.sqlite3").resolve()
orders = sa.Table(
    "orders",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("item", sa.Text),
)
# chat_outbox's layers, which it must only import under chat_outbox.*, never as top-level names.
LAYERS = {"application", "adapters", "entrypoints"}


def message(conversation_id):
    return ChatMessage(user_id=7, conversation_id=conversation_id, role=Role.USER, message="hi")


def host_migrate():
    config = Config()
    config.set_main_option("script_location", "host_migrations")
    config.set_main_option("sqlalchemy.url", f"sqlite:///{DATABASE}")
    command.upgrade(config, "head")


async def main():
    host_migrate()
    outbox = Outbox(Settings.of(database_url=f"sqlite+aiosqlite:///{DATABASE}"))
    await outbox.migrate()
    engine = create_async_engine(f"sqlite+aiosqlite:///{DATABASE}")
    async with AsyncSession(engine) as session:
        async with session.begin():
            await session.execute(orders.insert().values(item="kept"))
            kept = await outbox.record(session, message("conv-kept"))
        await session.begin()
        await session.execute(orders.insert().values(item="rolled back"))
        dropped = await outbox.record(session, message("conv-dropped"))
        await session.rollback()
    async with engine.connect() as connection:
        async def rows(sql):
            return [list(row) for row in await connection.execute(sa.text(sql))]

        tables = {name for [name] in await rows("SELECT name FROM sqlite_master")}
        versions = {
            table: await rows(f"SELECT version_num FROM {table}")
            for table in ("alembic_version", "chat_outbox_alembic_version")
            if table in tables
        }
        report = {
            "domain": [domain.DEFAULT_MAX_RETRY, domain.__file__],
            "chat_outbox_file": chat_outbox.__file__,
            "generic_modules": sorted(LAYERS & set(sys.modules)),
            "recorded": [kept.outbox_id, dropped.outbox_id],
            "orders": await rows("SELECT item FROM orders"),
            "outbox": await rows("SELECT id, status, message_key FROM agent_outbox_messages"),
            "versions": versions,
        }
    await engine.dispose()
    Path("report.json").write_text(json.dumps(report))


asyncio.run(main())
"""
HOST_FILES = {
    "domain/__init__.py": f"DEFAULT_MAX_RETRY = {HOST_VALUE!r}\n",
    "host_migrations/env.py": HOST_ENV,
    "host_migrations/versions/host0001_orders.py": HOST_REVISION,
    "app.py": HOST_APP,
}


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `command` outside this test's environment (no PYTHONPATH, no CHAT_OUTBOX_*)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
        and not key.startswith("CHAT_OUTBOX_")
    }
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a clean copy of the project: setuptools builds in the source
    tree and packs whatever a stale build/lib holds. Build isolation, because .venv's
    setuptools is older than pyproject's >=68 and cannot build wheels without `wheel`."""
    stage = tmp_path_factory.mktemp("stage")
    skipped = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", stage / "src", ignore=skipped)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, stage)
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, stage, cwd=stage)
    [built] = out.glob("*.whl")
    return built


@pytest.fixture(scope="session")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pip-less virtual environment holding the wheel, which sees the dev environment's
    dependencies through a path line in a .pth (whose own .pth files, such as the editable
    install's finder, are not processed)."""
    venv = tmp_path_factory.mktemp("guest") / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    python = venv / "bin" / "python"
    pip_install = ("-m", "pip", "--python", python, "install", "--no-index", "--no-deps", wheel)
    run(sys.executable, *pip_install, cwd=venv.parent)
    site = Path(sysconfig.get_path("purelib", "venv", vars={"base": str(venv)}))
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host application's directory: its own `domain` package, Alembic history and app."""
    host = tmp_path_factory.mktemp("host")
    for name, text in HOST_FILES.items():
        (host / name).parent.mkdir(parents=True, exist_ok=True)
        (host / name).write_text(text)
    return host


@pytest.fixture(scope="session")
def report(venv: Path, host: Path) -> dict[str, Any]:
    """What the host app saw after migrating and recording with the installed wheel."""
    run(venv / "bin" / "python", "app.py", cwd=host)
    result: dict[str, Any] = json.loads((host / "report.json").read_text())
    return result


def test_wheel_installs_only_chat_outbox_with_every_module(wheel: Path) -> None:
    """The wheel's only top-level package is chat_outbox, holding every src/ module and the
    migration scripts."""
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"chat_outbox"}
    assert len(tops) == 2
    sources = {
        f"chat_outbox/{path.relative_to(ROOT / 'src').as_posix()}"
        for path in (ROOT / "src").rglob("*.py")
    }
    assert {name for name in names if name.endswith(".py")} == sources
    migrations = {"env.py", "versions/0001_initial.py", "script.py.mako"}
    assert {MIGRATIONS + name for name in migrations} <= names
    assert "chat_outbox/py.typed" in names  # mypy reads a host's calls against our types


def test_wheel_metadata_lists_the_extras(wheel: Path) -> None:
    """The wheel's METADATA offers the postgres, mysql, kafka, rabbitmq, http, otel and all
    extras."""
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        headers = HeaderParser().parsestr(archive.read(metadata).decode())
    assert set(headers.get_all("Provides-Extra") or []) >= EXTRAS


def test_guest_imports_the_wheels_copy(venv: Path, report: dict[str, Any]) -> None:
    """In the guest environment chat_outbox is the wheel's installed copy, not the editable
    source, and it imports no generic top-level names such as `application`."""
    assert Path(report["chat_outbox_file"]).is_relative_to(venv)
    assert report["generic_modules"] == []


def test_host_domain_package_survives_chat_outbox(host: Path, report: dict[str, Any]) -> None:
    """The host's own `domain` package is still the host's after chat_outbox is imported
    and used."""
    assert report["domain"] == [HOST_VALUE, str(host / "domain" / "__init__.py")]


def test_record_commits_with_the_host_transaction(report: dict[str, Any]) -> None:
    """A message recorded in the host's committed transaction is one pending outbox row
    beside the host's row."""
    kept, _ = report["recorded"]
    assert report["orders"] == [["kept"]]
    assert report["outbox"] == [[kept, "pending", "conv-kept"]]


def test_record_rolls_back_with_the_host_transaction(report: dict[str, Any]) -> None:
    """A message recorded in a host transaction that rolls back leaves no outbox row."""
    _, dropped = report["recorded"]
    assert dropped not in [row[0] for row in report["outbox"]]
    assert "conv-dropped" not in [row[2] for row in report["outbox"]]
    assert ["rolled back"] not in report["orders"]


def test_migrate_keeps_the_hosts_alembic_version(report: dict[str, Any]) -> None:
    """Migrating leaves the host's `alembic_version` at exactly host0001 and keeps
    chat-outbox's revision in chat_outbox_alembic_version."""
    assert report["versions"]["alembic_version"] == [["host0001"]]
    assert report["versions"].get("chat_outbox_alembic_version") == [[HEAD]]


@pytest.mark.parametrize(
    "command", [["bin/chat-outbox"], ["bin/python", "-m", "chat_outbox"]], ids=["script", "module"]
)
def test_guest_command_line_helps(venv: Path, host: Path, command: list[str]) -> None:
    """The wheel's console script and `python -m chat_outbox` both print their help."""
    result = run(venv / command[0], *command[1:], "--help", cwd=host)
    assert "usage:" in result.stdout
    assert "migrate" in result.stdout
