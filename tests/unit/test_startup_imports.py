"""What a relay or consumer process loads at start: not the web framework, not Alembic."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.script import ScriptDirectory

from adapters.sql.migrate import HEAD, alembic_config

pytestmark = pytest.mark.unit

HEAVY = ("fastapi", "starlette", "alembic")
PROBE = (
    "import sys, entrypoints.cli, entrypoints.processes; "
    f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
)


def test_the_cli_loads_no_web_framework_or_alembic_until_a_command_needs_them() -> None:
    """dependency-injector would import FastAPI and Starlette (about 175 ms and 20 MiB per
    process) and the schema check Alembic; `serve` and `migrate` import them themselves."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_the_web_framework_still_imports_after_the_containers() -> None:
    """Hiding FastAPI from dependency-injector's import leaves it importable for `serve`."""
    probe = "import entrypoints.containers, fastapi.routing; print(fastapi.routing.__name__)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "fastapi.routing"


def test_the_schema_check_expects_the_newest_migration() -> None:
    """ensure_migrated compares the database with HEAD, not with the scripts: they agree."""
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD
