"""What a relay or consumer process loads at start: not the web framework, not Alembic."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.script import ScriptDirectory

from chat_outbox.adapters.sql.migrate import HEAD, alembic_config

pytestmark = pytest.mark.unit

HEAVY = ("fastapi", "starlette", "pydantic", "alembic")
PROBE = (
    "import sys, chat_outbox.entrypoints.console as console; console.load(); "
    "import chat_outbox.entrypoints.processes; "
    f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
)


def test_the_cli_loads_no_web_framework_or_alembic_until_a_command_needs_them() -> None:
    """dependency-injector would import FastAPI, Starlette and pydantic (about 195 ms and
    23 MiB per process) and the schema check Alembic; `serve` and `migrate` import them
    themselves."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_the_web_framework_and_the_real_pydantic_still_import_after_the_containers() -> None:
    """Hiding FastAPI and pydantic from dependency-injector's import leaves them importable
    for `serve`: the real pydantic, not the stand-in."""
    probe = (
        "import chat_outbox.entrypoints.console as console; console.load(); "
        "import chat_outbox.entrypoints.containers, fastapi.routing, pydantic; "
        "print(fastapi.routing.__name__, hasattr(pydantic, 'BaseModel'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "fastapi.routing True"


def test_a_host_importing_the_library_keeps_dependency_injectors_fastapi_support() -> None:
    """Only the chat-outbox process trims dependency-injector's imports: in a host process
    the containers leave sys.modules alone, so the host's own wiring still knows FastAPI."""
    probe = (
        "import chat_outbox.entrypoints.containers, dependency_injector.wiring as wiring; "
        "print([f.__name__ for f in wiring.MARKER_EXTRACTORS])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert "extract_marker_from_fastapi" in result.stdout


def test_the_schema_check_expects_the_newest_migration() -> None:
    """ensure_migrated compares the database with HEAD, not with the scripts: they agree."""
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD
