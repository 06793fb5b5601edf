"""The package root is the public API: small, documented, and a good guest when imported."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import chat_outbox

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_exported_name_resolves() -> None:
    """`__all__` lists only names the root really has, each once."""
    assert len(set(chat_outbox.__all__)) == len(chat_outbox.__all__)
    assert [name for name in chat_outbox.__all__ if not hasattr(chat_outbox, name)] == []


def test_the_readme_documents_every_exported_name() -> None:
    """Each public name appears in the README's 'Use it in your app' section."""
    text = README.read_text()
    section = text[text.index("## Use it in your app") : text.index("## How it works")]
    assert [name for name in chat_outbox.__all__ if f"`{name}" not in section] == []


def test_importing_the_package_changes_no_process_wide_state() -> None:
    """A host importing chat_outbox keeps its logging handlers, its signal handlers and
    its structlog configuration; no database, broker or web module is loaded, nor
    dependency-injector (the containers load with the first job a host starts)."""
    probe = (
        "import json, logging, signal, sys, structlog\n"
        "before = (logging.getLogger().handlers[:], signal.getsignal(signal.SIGTERM),"
        " structlog.is_configured())\n"
        "import chat_outbox\n"
        "after = (logging.getLogger().handlers[:], signal.getsignal(signal.SIGTERM),"
        " structlog.is_configured())\n"
        "loaded = [m for m in ('aiokafka', 'aio_pika', 'asyncpg', 'asyncmy', 'fastapi',"
        " 'uvicorn', 'alembic', 'dependency_injector', 'chat_outbox.entrypoints.local_broker')"
        " if m in sys.modules]\n"
        "print(json.dumps({'same': before == after, 'loaded': loaded}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(result.stdout) == {"same": True, "loaded": []}


def test_every_package_under_src_is_in_the_distribution() -> None:
    """A folder of src/ missing from pyproject's package list would be left out of the wheel:
    the editable install still imports it, so only an installed wheel would fail."""
    root = Path(__file__).resolve().parents[2]
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(("chat_outbox", *init.parent.relative_to(root / "src").parts))
        for init in (root / "src").rglob("__init__.py")
    }
    assert found - listed == set()
