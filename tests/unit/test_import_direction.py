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
PACKAGE = "chat_outbox"


def _within_package(name: str) -> str:
    """`chat_outbox.adapters.sql` -> `adapters.sql`: the layers are the package's children."""
    return name.removeprefix(f"{PACKAGE}.")


def imported_roots(package: str) -> dict[str, set[str]]:
    """Top-level names imported by each module of a package, by module path."""
    found: dict[str, set[str]] = {}
    for path in sorted((SRC / package).rglob("*.py")):
        roots: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                roots.update(_within_package(alias.name).split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(_within_package(node.module).split(".")[0])
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
    (package / "leaky.py").write_text("import sqlalchemy\nfrom chat_outbox.adapters.sql import x\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    assert forbidden("domain") == {"domain/leaky.py": {"sqlalchemy", "adapters"}}


BUS_LIBRARIES = {
    "aiokafka": "adapters/kafka/",
    "aio_pika": "adapters/rabbitmq/",
    "aiormq": "adapters/rabbitmq/",
    "pamqp": "adapters/rabbitmq/",
}
BUS_ADAPTERS = ("adapters.kafka", "adapters.rabbitmq")
BUS_PACKAGES = ("adapters/kafka/", "adapters/rabbitmq/")
PICKS_THE_BUS = "entrypoints/bus_clients.py"
# The demo's local Kafka broker (test and demo tooling) probes and provisions through the
# Kafka adapter, never through aiokafka itself.
KAFKA_TOOLING = {"entrypoints/local_broker.py": {"adapters.kafka.probe", "adapters.kafka.topics"}}


def imported_modules() -> dict[str, set[str]]:
    """Full dotted names imported by every module under src, by module path."""
    found: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(_within_package(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(_within_package(node.module))
        found[str(path.relative_to(SRC))] = names
    return found


def bus_knowledge_outside_its_place() -> dict[str, set[str]]:
    """Imports of a bus library outside its adapter package, and of a bus adapter outside
    its own package and the module that makes the containers' bus clients."""
    leaks: dict[str, set[str]] = {}
    for module, names in imported_modules().items():
        bad = {name for name in names if _misplaced_library(module, name)}
        bad |= {name for name in names if _misplaced_adapter(module, name)}
        if bad:
            leaks[module] = bad
    return leaks


def _misplaced_library(module: str, name: str) -> bool:
    home = BUS_LIBRARIES.get(name.split(".")[0])
    return home is not None and not module.startswith(home)


def _misplaced_adapter(module: str, name: str) -> bool:
    return (
        name.startswith(BUS_ADAPTERS)
        and module != PICKS_THE_BUS
        and not module.startswith(BUS_PACKAGES)
        and name not in KAFKA_TOOLING.get(module, set())
    )


def test_only_the_bus_adapters_and_the_bus_clients_know_which_bus_is_in_use() -> None:
    """aiokafka and aio-pika are imported only in their adapter packages, and those
    packages only by the module that makes the bus clients the containers pick from."""
    assert bus_knowledge_outside_its_place() == {}


def test_the_bus_check_catches_a_leak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An application module importing aio_pika, or a command importing the Kafka adapter,
    is reported, so the check above can fail."""
    for package in ("application", "entrypoints", "adapters/rabbitmq"):
        (tmp_path / package).mkdir(parents=True)
    (tmp_path / "application" / "leaky.py").write_text("import aio_pika\n")
    (tmp_path / "entrypoints" / "commands.py").write_text(
        "from chat_outbox.adapters.kafka import KafkaBus\n"
    )
    (tmp_path / "adapters" / "rabbitmq" / "bus.py").write_text("import aio_pika\n")
    (tmp_path / "entrypoints" / "bus_clients.py").write_text(
        "from chat_outbox.adapters.rabbitmq import X\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    assert bus_knowledge_outside_its_place() == {
        "application/leaky.py": {"aio_pika"},
        "entrypoints/commands.py": {"adapters.kafka"},
    }


def test_every_first_party_import_names_the_package() -> None:
    """No module imports a layer as a top-level package (`from domain import ...`): the
    wheel installs only `chat_outbox`, and a host app may have a `domain` of its own."""
    bare = {
        module: {name for name in names if name.split(".")[0] in LAYERS}
        for module, names in _raw_imports().items()
    }
    assert {module: names for module, names in bare.items() if names} == {}


def _raw_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(SRC))] = names
    return found
