"""The layers point one way: domain <- application <- adapters <- entrypoints."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SRC = Path(__file__).resolve().parents[2] / "src"
LAYERS = ("domain", "application", "adapters", "entrypoints")
THIRD_PARTY_ALLOWED = {
    "domain": {"attrs"},
    "application": {"attrs", "structlog"},
}


def imported_roots(package: str) -> dict[str, set[str]]:
    """Top-level names imported by each module of a package, by module path."""
    found: dict[str, set[str]] = {}
    for path in sorted((SRC / package).rglob("*.py")):
        roots: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.split(".")[0])
        found[str(path.relative_to(SRC))] = roots
    return found


def forbidden(package: str) -> dict[str, set[str]]:
    later_layers = set(LAYERS[LAYERS.index(package) + 1 :])
    allowed = THIRD_PARTY_ALLOWED.get(package)
    result = {}
    for module, roots in imported_roots(package).items():
        bad = roots & later_layers
        if allowed is not None:
            bad |= {r for r in roots - set(LAYERS) - sys.stdlib_module_names if r not in allowed}
        if bad:
            result[module] = bad
    return result


def test_domain_imports_only_the_standard_library_and_attrs() -> None:
    """No SQLAlchemy, aiokafka, application or adapter import reaches the domain."""
    assert forbidden("domain") == {}


def test_application_imports_no_adapter_entrypoint_or_driver() -> None:
    """Use cases see ports only: no adapters, no entrypoints, no database or bus library."""
    assert forbidden("application") == {}


def test_adapters_import_no_entrypoint() -> None:
    """Adapters never reach up into the entrypoints that wire them."""
    assert forbidden("adapters") == {}


def test_the_check_catches_a_forbidden_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A domain module importing sqlalchemy is reported, so the checks above can fail."""
    package = tmp_path / "domain"
    package.mkdir()
    (package / "leaky.py").write_text("import sqlalchemy\nfrom adapters.sql import x\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    assert forbidden("domain") == {"domain/leaky.py": {"sqlalchemy", "adapters"}}
