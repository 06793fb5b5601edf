"""What a relay or consumer process loads at start: not the HTTP stack, not Alembic."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.script import ScriptDirectory

from chat_outbox.adapters.sql.migrate import HEAD, alembic_config

pytestmark = pytest.mark.unit

# dependency-injector's wiring imports FastAPI (and with it Starlette and pydantic) when
# the `http` extra is installed; our own HTTP stack, its server and Alembic stay unloaded.
HEAVY = ("chat_outbox.entrypoints.http", "uvicorn", "jinja2", "jwt", "alembic")
PROBE = (
    "import sys, chat_outbox.entrypoints.console, chat_outbox.entrypoints.processes; "
    f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
)


def test_the_cli_loads_no_http_stack_or_alembic_until_a_command_needs_them() -> None:
    """`serve` imports the HTTP routes and uvicorn, and `migrate` Alembic, themselves: the
    relay, the consumer and the one-shot commands never pay for them."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_parsing_a_command_line_loads_no_container() -> None:
    """`--help` and usage errors answer before any container, dependency-injector or the
    FastAPI it imports is loaded: only the command that runs imports its container."""
    probe = (
        "import sys; from chat_outbox.entrypoints.console import main; "
        "from chat_outbox.entrypoints.cli import build_parser; "
        "build_parser().parse_args(['relay', '--once']); "
        "print([m for m in ('dependency_injector', 'fastapi') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_host_importing_the_containers_keeps_dependency_injectors_fastapi_support() -> None:
    """The containers leave sys.modules alone, so a host's own wiring still knows FastAPI's
    Depends markers."""
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
