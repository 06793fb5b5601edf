"""Prometheus metrics: the application's Metrics port on prometheus-client, and its server."""

from adapters.metrics.prometheus import PrometheusMetrics
from adapters.metrics.server import ListenFailed, metrics_server

__all__ = ["ListenFailed", "PrometheusMetrics", "metrics_server"]
