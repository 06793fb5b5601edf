"""Prometheus metrics: the application's Metrics port on prometheus-client, and its server."""

from adapters.metrics.prometheus import PrometheusMetrics
from adapters.metrics.server import metrics_server

__all__ = ["PrometheusMetrics", "metrics_server"]
