"""What a relay or consumer process starts and loads at start-up: the client of its own bus
only, and no Prometheus registry without a metrics port."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers

from chat_outbox.adapters import kafka, rabbitmq
from chat_outbox.adapters.metrics import PrometheusMetrics
from chat_outbox.adapters.metrics.server import ListenFailed
from chat_outbox.application.metrics import NoMetrics
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.containers import ConsumerContainer, RelayContainer, resources
from chat_outbox.entrypoints.local_broker import free_loopback_port

pytestmark = pytest.mark.unit

# Each bus client class a process could start, by the bus it belongs to.
CLIENTS = {
    "relay": {"kafka": (kafka, "KafkaBus"), "rabbitmq": (rabbitmq, "RabbitBus")},
    "consumer": {"kafka": (kafka, "KafkaSource"), "rabbitmq": (rabbitmq, "RabbitSource")},
}
# Runs the CLI with the named module made unimportable, as if its extra were not installed.
WITHOUT = (
    "import sys\n"
    "sys.modules[sys.argv[1]] = None\n"
    "from chat_outbox.entrypoints.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)
NOT_AT_START = (
    "prometheus_client",
    "chat_outbox.adapters.memory",
    "chat_outbox.adapters.sql.insights",
    "chat_outbox.adapters.sql.probe",
)


def _process(kind: str, tmp_path: Path, **settings: object) -> RelayContainer | ConsumerContainer:
    """A relay or consumer container on a fresh SQLite file, its schema check skipped."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}"
    values = Settings.of(database_url=url, **settings)
    container = (
        RelayContainer(settings=values) if kind == "relay" else ConsumerContainer(settings=values)
    )
    container.schema.override(providers.Object(None))
    return container


@pytest.mark.parametrize("kind", ["relay", "consumer"])
@pytest.mark.parametrize("bus", ["kafka", "rabbitmq"])
async def test_a_process_starts_the_client_of_its_own_bus_only(
    kind: str, bus: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting another bus's client would import its library at start-up, and fail a
    process installed without that bus's extra."""
    started: list[str] = []
    for name, (module, attribute) in CLIENTS[kind].items():

        class Client:
            def __init__(self, *_: Any, _bus: str = name, **__: Any) -> None:
                started.append(_bus)

            async def close(self) -> None:
                pass

        monkeypatch.setattr(module, attribute, Client)
    async with resources(_process(kind, tmp_path, bus=bus)):
        assert started == [bus]


@pytest.mark.parametrize("kind", ["relay", "consumer"])
async def test_a_process_without_a_metrics_port_makes_no_registry(
    kind: str, tmp_path: Path
) -> None:
    """Unserved metrics are not kept, so nothing needs prometheus-client's registry."""
    container = _process(kind, tmp_path, bus="kafka")
    made: list[object] = []
    container.core.registry.override(providers.Callable(made.append, "registry"))
    async with resources(container):
        assert isinstance(container.core.scraped(), NoMetrics)
    assert made == []


async def test_a_metrics_port_serves_the_registry_the_process_records_in(tmp_path: Path) -> None:
    port = free_loopback_port()
    container = _process("relay", tmp_path, bus="kafka", metrics_port=port)
    async with resources(container):
        metrics = container.core.scraped()
        assert isinstance(metrics, PrometheusMetrics)
        metrics.dead_lettered(3)
        body = await asyncio.to_thread(_scrape, port)
    assert "chat_outbox_dlq_records_total 3.0" in body


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def test_a_metrics_port_in_use_still_fails_the_start_in_one_line(tmp_path: Path) -> None:
    port = free_loopback_port()
    first = _process("relay", tmp_path, bus="kafka", metrics_port=port)
    second = _process("consumer", tmp_path, bus="kafka", metrics_port=port)
    async with resources(first):
        with pytest.raises(ListenFailed, match=f"cannot listen on 127.0.0.1:{port}"):
            async with resources(second):
                pass


def test_a_process_imports_neither_prometheus_nor_what_only_the_demo_and_serve_use() -> None:
    """The in-memory bus is the demo's; the database probe and the dashboard's reads are
    `serve`'s; prometheus-client is loaded only when a metrics port is set."""
    probe = (
        "import sys, chat_outbox.entrypoints.console, chat_outbox.entrypoints.processes; "
        f"print(','.join(m for m in {NOT_AT_START!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(("bus", "other"), [("kafka", "aio_pika"), ("rabbitmq", "aiokafka")])
def test_a_relay_starts_without_the_other_buss_extra(bus: str, other: str, tmp_path: Path) -> None:
    """`chat-outbox[postgres,kafka]` is a whole relay: nothing due, it exits 0 at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_OUTBOX_")}
    env["CHAT_OUTBOX_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}"
    env["CHAT_OUTBOX_BUS"] = bus
    command = [sys.executable, "-m", "chat_outbox", "migrate"]
    subprocess.run(command, env=env, capture_output=True, check=True, timeout=60)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT, other, "relay", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"event": "relay_stopped"' in result.stderr
