"""Prometheus metrics from the relay and the consumer, read back from their own registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from prometheus_client import CollectorRegistry

from chat_outbox.adapters.metrics import PrometheusMetrics
from chat_outbox.application.metrics import refresh_outbox_gauges
from chat_outbox.application.ports import OutboxStats
from chat_outbox.domain import OutboxStatus, PublishFailure
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.containers import RelayContainer
from tests.unit.conftest import Harness, failing

pytestmark = pytest.mark.unit


@pytest.fixture
def metrics() -> PrometheusMetrics:
    return PrometheusMetrics(CollectorRegistry())


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_the_relay_observes_publish_latency_from_creation(
    harness: Harness, metrics: PrometheusMetrics
) -> None:
    """A message published 3 s after it was recorded lands in the publish histogram."""
    await harness.record()
    harness.clock.advance(timedelta(seconds=3))
    await attrs.evolve(harness.relay(), metrics=metrics).relay_due()
    assert value(metrics, "chat_outbox_publish_latency_seconds_count") == 1
    assert value(metrics, "chat_outbox_publish_latency_seconds_sum") == 3.0
    assert value(metrics, "chat_outbox_publish_latency_seconds_bucket", le="2.5") == 0


async def test_the_relay_counts_retries_and_dead_rows(
    harness: Harness, metrics: PrometheusMetrics
) -> None:
    """A retryable failure counts a retry; a fatal one counts a dead row."""
    await harness.record("conv-a")
    await harness.record("conv-b")
    harness.bus.fail_with = lambda record: (
        PublishFailure("leader moved") if record.key == "conv-a" else PublishFailure.fatal("big")
    )
    await attrs.evolve(harness.relay(), metrics=metrics).relay_due()
    assert value(metrics, "chat_outbox_publish_retries_total") == 1
    assert value(metrics, "chat_outbox_dead_rows_total") == 1
    assert value(metrics, "chat_outbox_publish_latency_seconds_count") == 0


async def test_the_consumer_observes_end_to_end_latency_and_dlq_records(
    harness: Harness, metrics: PrometheusMetrics
) -> None:
    """A record consumed 5 s after it was recorded is observed; an undecodable one is counted
    as a DLQ record and not observed."""
    await harness.record()
    await harness.relay().relay_due()
    harness.bus.produce_raw(b"{")
    harness.clock.advance(timedelta(seconds=5))
    await attrs.evolve(harness.consumer(), metrics=metrics).consume_batch(timeout=0)
    assert value(metrics, "chat_outbox_end_to_end_latency_seconds_count") == 1
    assert value(metrics, "chat_outbox_end_to_end_latency_seconds_sum") == 5.0
    assert value(metrics, "chat_outbox_dlq_records_total") == 1


async def test_the_outbox_gauges_follow_the_stats_query(
    harness: Harness, metrics: PrometheusMetrics
) -> None:
    """Rows by status, the oldest pending age and held rows come from the stats query."""
    await harness.record("conv-a")
    harness.clock.advance(timedelta(seconds=10))
    await harness.record("conv-b")
    harness.bus.fail_with = failing(PublishFailure.fatal("bad"), lambda r: r.key == "conv-b")
    await harness.relay().relay_due()
    await harness.record("conv-b")
    harness.clock.advance(timedelta(seconds=2))
    await refresh_outbox_gauges(harness.uow, harness.clock, metrics)
    assert value(metrics, "chat_outbox_rows", status="published") == 1
    assert value(metrics, "chat_outbox_rows", status="dead") == 1
    assert value(metrics, "chat_outbox_rows", status="pending") == 1
    assert value(metrics, "chat_outbox_rows", status="consumed") == 0
    assert value(metrics, "chat_outbox_oldest_pending_age_seconds") == 2.0
    assert value(metrics, "chat_outbox_held_behind_dead") == 1


def test_rows_by_type_follow_the_stats_and_a_type_gone_reads_zero(
    metrics: PrometheusMetrics,
) -> None:
    chat = {s: 0 for s in OutboxStatus} | {OutboxStatus.CONSUMED: 3}
    runs = {s: 0 for s in OutboxStatus} | {OutboxStatus.DEAD: 1}
    now = datetime.now(UTC)
    metrics.outbox_snapshot(
        OutboxStats({}, None, None, by_type={"chat_history_persist": chat, "agent_run.x": runs}),
        now,
    )
    assert value(metrics, "chat_outbox_rows_by_type", type="agent_run.x", status="dead") == 1
    assert (
        value(metrics, "chat_outbox_rows_by_type", type="chat_history_persist", status="consumed")
        == 3
    )
    metrics.outbox_snapshot(
        OutboxStats({}, None, None, by_type={"chat_history_persist": chat}), now
    )
    assert value(metrics, "chat_outbox_rows_by_type", type="agent_run.x", status="dead") == 0


def test_lag_is_reported_per_partition_and_never_negative(metrics: PrometheusMetrics) -> None:
    """Each partition has its own lag series; a stale high-water mark reads as zero."""
    metrics.consumer_lag("chat", 0, 42)
    metrics.consumer_lag("chat", 1, -3)
    assert value(metrics, "chat_outbox_consumer_lag", topic="chat", partition="0") == 42
    assert value(metrics, "chat_outbox_consumer_lag", topic="chat", partition="1") == 0


def test_two_containers_register_the_same_metrics_independently() -> None:
    """Registries are per instance, so a second set of metrics does not collide."""
    first, second = PrometheusMetrics(CollectorRegistry()), PrometheusMetrics(CollectorRegistry())
    first.dead_lettered(2)
    assert value(first, "chat_outbox_dlq_records_total") == 2
    assert value(second, "chat_outbox_dlq_records_total") == 0


@pytest.mark.parametrize(("port", "kept"), [(0, False), (9464, True)])
def test_relay_and_consumer_keep_metrics_only_when_a_port_serves_them(
    port: int, kept: bool
) -> None:
    """Unserved, nobody reads them, and each message would pay a histogram observation."""
    container = RelayContainer(settings=Settings.of(metrics_port=port))
    scraped = container.core.scraped()
    assert isinstance(scraped, PrometheusMetrics) is kept
    assert (scraped is container.core.metrics()) is kept
