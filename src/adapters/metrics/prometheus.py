"""The Metrics port on prometheus-client, in a registry of its own (one per container)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from chat_outbox.application.metrics import Metrics
from chat_outbox.application.ports import OutboxStats
from chat_outbox.domain import OutboxStatus

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Histogram

# From a few milliseconds (a healthy pipeline) to half an hour (a broker outage).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
"""The one label value of every method outside HTTP_METHODS (a client picks the method)."""


class PrometheusMetrics(Metrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        # Imported here: a relay or consumer without a metrics port builds no metrics, and
        # so never loads prometheus-client.
        from prometheus_client import Counter, Gauge, Histogram

        self.registry = registry
        self.rows = Gauge(
            "chat_outbox_rows", "Outbox rows by status", ["status"], registry=registry
        )
        self.rows_by_type = Gauge(
            "chat_outbox_rows_by_type",
            "Outbox rows by event type and status",
            ["type", "status"],
            registry=registry,
        )
        self._types_seen: set[str] = set()
        self.oldest_pending_age = Gauge(
            "chat_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending row (0 when none)",
            registry=registry,
        )
        self.held_behind_dead = Gauge(
            "chat_outbox_held_behind_dead",
            "Pending rows waiting behind a dead message of their conversation",
            registry=registry,
        )
        self.publish_latency = _latency("publish", "created to published", registry)
        self.consume_latency = _latency("consume", "published to consumed", registry)
        self.end_to_end_latency = _latency("end_to_end", "created to consumed", registry)
        self.retries = Counter(
            "chat_outbox_publish_retries",
            "Failed publishes scheduled for another attempt",
            registry=registry,
        )
        self.dead = Counter(
            "chat_outbox_dead_rows", "Rows the relay moved to dead", registry=registry
        )
        self.dlq_records = Counter(
            "chat_outbox_dlq_records",
            "Records the consumer parked in the dead-letter topic",
            registry=registry,
        )
        self.consumer_lag_records = Gauge(
            "chat_outbox_consumer_lag",
            "Records behind the partition's high-water mark at the latest fetch",
            ["topic", "partition"],
            registry=registry,
        )
        self.http_requests = Counter(
            "chat_outbox_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "chat_outbox_http_request_duration_seconds",
            "HTTP request duration by route",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )

    def published(self, latencies_s: Sequence[float]) -> None:
        for latency in latencies_s:
            self.publish_latency.observe(max(latency, 0.0))

    def publish_failed(self, retried: int, dead: int) -> None:
        self.retries.inc(retried)
        self.dead.inc(dead)

    def consumed(self, consume_latencies_s: Sequence[float], end_to_end_s: Sequence[float]) -> None:
        # Clamped at zero: the bus's timestamps come from another host's clock.
        for latency in consume_latencies_s:
            self.consume_latency.observe(max(latency, 0.0))
        for latency in end_to_end_s:
            self.end_to_end_latency.observe(max(latency, 0.0))

    def dead_lettered(self, records: int = 1) -> None:
        self.dlq_records.inc(records)

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag_records.labels(topic, str(partition)).set(max(lag, 0))

    def outbox_snapshot(self, stats: OutboxStats, now: datetime) -> None:
        for status in OutboxStatus:
            self.rows.labels(status.value).set(stats.counts.get(status, 0))
        # A type whose rows are all purged reads zero rather than its last counts.
        self._types_seen.update(stats.by_type)
        for kind in self._types_seen:
            counts = stats.by_type.get(kind, {})
            for status in OutboxStatus:
                self.rows_by_type.labels(kind, status.value).set(counts.get(status, 0))
        oldest = stats.oldest_pending_at
        self.oldest_pending_age.set(0 if oldest is None else (now - oldest).total_seconds())
        self.held_behind_dead.set(stats.held)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # Each distinct label value is a new series kept forever: only known methods count.
        method = method if method in HTTP_METHODS else OTHER_METHOD
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def _latency(name: str, between: str, registry: CollectorRegistry) -> Histogram:
    from prometheus_client import Histogram

    return Histogram(
        f"chat_outbox_{name}_latency_seconds",
        f"Seconds from {between}",
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
