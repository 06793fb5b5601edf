"""Dependency-injector containers: one shared core, one container per entrypoint."""

from __future__ import annotations

import inspect
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import structlog
from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.codec import FastEnvelopeCodec
from chat_outbox.adapters.metrics import PrometheusMetrics, metrics_server
from chat_outbox.adapters.sql import (
    OneStatementHistoryWriter,
    SqlUnitOfWorkFactory,
    create_engine,
    ensure_migrated,
)
from chat_outbox.adapters.sql.claims import LeasedClaims, LockedClaims, open_lanes
from chat_outbox.adapters.sql.handling import SqlEventHandlers
from chat_outbox.adapters.sql.wakeups import wakeups_for
from chat_outbox.adapters.tracing import available_tracing
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.metrics import Metrics, NoMetrics
from chat_outbox.application.operate.health import always_ready
from chat_outbox.application.ports import (
    Clock,
    HistoryWriter,
    UnitOfWorkFactory,
)
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.application.relay.loop import Polling
from chat_outbox.application.relay.relaying import Relay
from chat_outbox.application.relay.sharing import RelayMembership
from chat_outbox.entrypoints.bus_clients import (
    kafka_probe,
    message_bus,
    message_source,
    rabbit_probe,
)
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.events import EventRegistry, load_registry
from chat_outbox.entrypoints.jobs import consumer_jobs, relay_jobs

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from chat_outbox.adapters.memory import InMemoryBus
    from chat_outbox.adapters.sql.insights import SqlInsights
    from chat_outbox.adapters.sql.probe import DatabaseProbe
    from chat_outbox.entrypoints.http.dashboard.session import LoginThrottle, RevokedSessions

C = TypeVar("C", bound=containers.Container)
T = TypeVar("T")
log = structlog.get_logger(__name__)


async def provided(provider: providers.Provider[T], **arguments: Any) -> T:
    """What `provider` gives when called with `arguments`, awaited when an async Resource
    under it (the engine, a bus client) makes it async. `provider.async_()` would not do:
    an overriding provider, a test's fake, does not keep its async mode."""
    value = provider(**arguments)
    return await value if inspect.isawaitable(value) else value


@asynccontextmanager
async def resources(container: C) -> AsyncIterator[C]:
    """Start the container's Resources (engine, Kafka clients); stop them however we leave,
    also when one of them fails to start after others did."""
    try:
        await container.init_resources()  # type: ignore[misc]
    except BaseException:
        await _shutdown_after_failed_start(container)
        raise
    try:
        yield container
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


async def _shutdown_after_failed_start(container: containers.Container) -> None:
    """Close what did start; the start's own error is the one to report, so a second
    error while closing is logged, not raised over it."""
    try:
        await container.shutdown_resources()  # type: ignore[misc]
    except Exception as error:  # noqa: BLE001 - logged; the start failure is re-raised
        log.warning("resources_shutdown_failed", error=f"{type(error).__name__}: {error}")


async def _engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    # With lock claims the lease doubles as the longest a transaction may sit idle: a hung
    # relay holding row locks loses them (and its connection) after that long. Only then:
    # MySQL and MariaDB before 10.3 refuse the session variable.
    idle_limit = timedelta(seconds=settings.relay.lease_seconds)
    limit = idle_limit if settings.relay_locks_claims else None
    engine = create_engine(settings.core.database_url, idle_transaction_timeout=limit)
    try:
        yield engine
    finally:
        await engine.dispose()


def _registry() -> CollectorRegistry:
    # Imported here: a relay or consumer without a metrics port never makes a registry.
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


def _scraped(settings: Settings, metrics: Callable[[], PrometheusMetrics]) -> Metrics:
    """The relay's and the consumer's metrics, made and kept only when a metrics port
    serves them: unscraped, they cost a histogram observation per message and nothing
    reads them."""
    return metrics() if settings.metrics.port else NoMetrics()


def _codec(events: EventRegistry) -> FastEnvelopeCodec:
    return FastEnvelopeCodec(frozenset(events.types))


def _consumer_writes(settings: Settings, events: EventRegistry) -> int:
    """Batches written at once; one at a time with event handlers, whose effects must
    follow their key's order across batches (chat history is read back in order anyway)."""
    return 1 if events.handlers else settings.consumer_writes_at_once


class Core(containers.DeclarativeContainer):
    """What every entrypoint shares: settings, the database, the clock, the event types.
    A host's jobs override `events` with the registry of its Outbox."""

    settings = providers.Dependency(instance_of=Settings)
    engine = providers.Resource(_engine, settings)
    uow = providers.Singleton(SqlUnitOfWorkFactory, engine)
    clock = providers.Singleton(SystemClock)
    event_ids = providers.Object(uuid4_event_id)
    # A registry per container, not prometheus_client's global one: tests stay independent.
    registry = providers.Singleton(_registry)
    metrics = providers.Singleton(PrometheusMetrics, registry)
    scraped = providers.Singleton(_scraped, settings, metrics.provider)
    tracing = providers.Singleton(available_tracing)
    events = providers.Singleton(load_registry, settings.provided.core.events)
    codec = providers.Singleton(_codec, events)
    record = providers.Factory(
        RecordChatMessage,
        uow=uow,
        clock=clock,
        event_ids=event_ids,
        topic=settings.provided.core.topic,
        max_retry=settings.provided.core.max_retry,
        tracing=tracing,
    )


@attrs.frozen
class Tools:
    """What a one-shot command or the demo works with, resolved once from its container."""

    engine: AsyncEngine
    uow: UnitOfWorkFactory
    clock: Clock
    record: RecordChatMessage


def _tools(core: providers.Container[Core]) -> providers.Factory[Tools]:
    return providers.Factory(
        Tools, engine=core.engine, uow=core.uow, clock=core.clock, record=core.record
    )


class CliContainer(containers.DeclarativeContainer):
    """The one-shot commands: migrate, send, stats, history, dead, purge."""

    settings = providers.Dependency(instance_of=Settings)
    core = providers.Container(Core, settings=settings)
    tools = _tools(core)


def _relay(
    core: providers.Container[Core],
    settings: providers.Dependency[Settings],
    bus: providers.Provider[Any],
) -> providers.Factory[Relay]:
    claims = providers.Selector(
        providers.Callable(_claim_kind, settings),
        lease=providers.Factory(
            LeasedClaims,
            core.uow,
            core.clock,
            providers.Callable(_relay_lease, settings),
        ),
        lock=providers.Factory(
            LockedClaims,
            core.uow,
            providers.Callable(
                RelayMembership.lane,
                providers.Singleton(_relay_membership, settings, core.uow, core.clock),
            ),
        ),
    )
    return providers.Factory(
        Relay,
        claims=claims,
        bus=bus,
        clock=core.clock,
        batch_size=settings.provided.relay.batch_size,
        metrics=core.scraped,
        codec=core.codec,
    )


def _claim_kind(settings: Settings) -> str:
    return "lock" if settings.relay_locks_claims else "lease"


def _locking_lanes(settings: Settings) -> int:
    return settings.relay_lanes_at_once if settings.relay_locks_claims else 0


async def _schema_and_lanes(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, clock: SystemClock, lanes: int
) -> None:
    """The schema check, then the locking lanes' connections (a claim on a table that is
    not there would say less than the check)."""
    await ensure_migrated(engine)
    await open_lanes(uow, clock, lanes)


def _relay_lease(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.relay.lease_seconds)


def _relay_membership(
    settings: Settings, uow: SqlUnitOfWorkFactory, clock: SystemClock
) -> RelayMembership:
    """Locking relays share the conversations out (leasing ones claim heads from all of
    them); the process is one member, its lanes split its share. A member counts as alive
    for a few of its idle polls, so an idle relay stays in."""
    member = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    alive_for = timedelta(seconds=max(5.0, 3 * settings.relay.max_poll_interval))
    return RelayMembership(uow, clock, member, alive_for=alive_for)


def history_writer(engine: AsyncEngine, uow: SqlUnitOfWorkFactory) -> HistoryWriter:
    """PostgreSQL takes a batch of new event ids in one statement; other databases, and the
    batches that statement cannot take whole, are written in a unit of work."""
    general = UnitOfWorkHistoryWriter(uow)
    if engine.dialect.name == "postgresql":
        return OneStatementHistoryWriter(engine, rest=general)
    return general


def _consumer(
    core: providers.Container[Core],
    settings: providers.Dependency[Settings],
    source: providers.Provider[Any],
) -> providers.Singleton[Consumer]:
    return providers.Singleton(
        Consumer,
        source=source,
        writer=providers.Factory(history_writer, core.engine, core.uow),
        clock=core.clock,
        max_message_bytes=settings.provided.core.max_message_bytes,
        batch_size=settings.provided.consumer.batch_size,
        writes=providers.Callable(_consumer_writes, settings, core.events),
        metrics=core.scraped,
        tracing=core.tracing,
        codec=core.codec,
        handlers=providers.Factory(
            SqlEventHandlers,
            core.uow,
            core.events.provided.handlers,
            core.events.provided.types,
        ),
        handler_attempts=settings.provided.consumer.handler_attempts,
    )


def _in_memory_bus() -> InMemoryBus:
    # Imported here: only the demo, which relays and consumes in one process, uses it.
    from chat_outbox.adapters.memory import InMemoryBus

    return InMemoryBus()


class InProcessContainer(containers.DeclarativeContainer):
    """Record, relay and consume in one process over the in-memory bus (the demo)."""

    settings = providers.Dependency(instance_of=Settings)
    core = providers.Container(Core, settings=settings)
    bus = providers.Singleton(_in_memory_bus)
    relay = _relay(core, settings, bus)
    consumer = _consumer(core, settings, bus)
    tools = _tools(core)


def _seconds(milliseconds: float) -> float:
    return milliseconds / 1000


async def _lanes(make: providers.Provider[Relay], count: int) -> list[Relay]:
    """A relay per lane, each with its own claims."""
    return [await provided(make) for _ in range(count)]


class RelayContainer(containers.DeclarativeContainer):
    """`chat-outbox relay`: the database and the bus named by CHAT_OUTBOX_BUS."""

    settings = providers.Dependency(instance_of=Settings)
    core = providers.Container(Core, settings=settings)
    bus = providers.Resource(message_bus, settings, core.events)
    relay = _relay(core, settings, bus)
    wakeups = providers.Resource(wakeups_for, core.engine)
    polling = providers.Factory(
        Polling,
        minimum=settings.provided.relay.poll_interval,
        maximum=settings.provided.relay.max_poll_interval,
        coalesce=providers.Callable(_seconds, settings.provided.relay.wakeup_coalesce_ms),
        pace=providers.Callable(_seconds, settings.provided.relay.pace_ms),
    )
    metrics_server = providers.Resource(
        metrics_server,
        core.registry.provider,
        settings.provided.metrics.host,
        settings.provided.metrics.port,
    )
    schema = providers.Resource(
        _schema_and_lanes,
        core.engine,
        core.uow,
        core.clock,
        providers.Callable(_locking_lanes, settings),
    )
    # What the process runs; called with once=True by `relay --once`.
    jobs = providers.Callable(
        relay_jobs,
        settings,
        relays=providers.Coroutine(_lanes, relay.provider, settings.provided.relay_lanes_at_once),
        polling=polling,
        wakeups=wakeups,
        uow=core.uow,
        clock=core.clock,
        metrics=core.scraped,
    )


class ConsumerContainer(containers.DeclarativeContainer):
    """`chat-outbox consume`: the database and the source named by CHAT_OUTBOX_BUS."""

    settings = providers.Dependency(instance_of=Settings)
    core = providers.Container(Core, settings=settings)
    source = providers.Resource(message_source, settings, core.scraped, core.events)
    consumer = _consumer(core, settings, source)
    metrics_server = providers.Resource(
        metrics_server,
        core.registry.provider,
        settings.provided.metrics.host,
        settings.provided.metrics.port,
    )
    schema = providers.Resource(ensure_migrated, core.engine)
    # What the process runs; called with idle_exit by `consume --idle-exit`.
    jobs = providers.Callable(consumer_jobs, consumer)


def _database_probe(engine: AsyncEngine) -> DatabaseProbe:
    # Imported here, as the dashboard's state below: only `serve` probes and reads them.
    from chat_outbox.adapters.sql.probe import DatabaseProbe

    return DatabaseProbe(engine)


def _insights(engine: AsyncEngine) -> SqlInsights:
    from chat_outbox.adapters.sql.insights import SqlInsights

    return SqlInsights(engine)


def _login_throttle() -> LoginThrottle:
    # Imported here: the HTTP package imports FastAPI, which only `serve` loads.
    from chat_outbox.entrypoints.http.dashboard.session import LoginThrottle

    return LoginThrottle()


def _revoked_sessions() -> RevokedSessions:
    from chat_outbox.entrypoints.http.dashboard.session import RevokedSessions

    return RevokedSessions()


class ApiContainer(containers.DeclarativeContainer):
    """`chat-outbox serve`: records and reads through the database; probes the bus."""

    settings = providers.Dependency(instance_of=Settings)
    core = providers.Container(Core, settings=settings)
    database_probe = providers.Singleton(_database_probe, core.engine)
    insights = providers.Singleton(_insights, core.engine)
    # The dashboard's login state: failed logins per client, sessions ended by a logout.
    login_throttle = providers.Singleton(_login_throttle)
    revoked_sessions = providers.Singleton(_revoked_sessions)
    bus_probe = providers.Selector(
        settings.provided.core.bus,
        kafka=providers.Singleton(kafka_probe, settings),
        rabbitmq=providers.Singleton(rabbit_probe, settings),
        memory=providers.Object(always_ready),
    )
