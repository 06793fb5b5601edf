"""Prometheus metrics: the application's Metrics port on prometheus-client, and its server."""

from chat_outbox.adapters.metrics.prometheus import PrometheusMetrics
from chat_outbox.adapters.metrics.server import ListenFailed, metrics_server

__all__ = ["ListenFailed", "PrometheusMetrics", "metrics_server"]
