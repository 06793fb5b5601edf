"""The Grafana dashboard and the Prometheus alerts name only metrics chat-outbox exports."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from chat_outbox.adapters.metrics import PrometheusMetrics
from chat_outbox.application.ports import OutboxStats

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\bchat_outbox_[a-z_]+\b")


def exported_names() -> set[str]:
    """Every series name in a scrape after each kind of metric has been reported once."""
    metrics = PrometheusMetrics(CollectorRegistry())
    metrics.published([0.1])
    metrics.publish_failed(1, 1)
    metrics.consumed([0.1], [0.2])
    metrics.dead_lettered()
    metrics.consumer_lag("chat", 0, 3)
    metrics.outbox_snapshot(OutboxStats({}, None, None), datetime.now(UTC))
    metrics.http_request("GET", "/admin", 200, 0.01)
    scrape = metrics.exposition().decode()
    return {line.split("{")[0].split(" ")[0] for line in scrape.splitlines() if line[:1] != "#"}


def grafana_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "chat-outbox.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_metric_the_grafana_dashboard_names_is_exported() -> None:
    named = {name for expr in grafana_expressions() for name in METRIC.findall(expr)}
    assert named, "the dashboard names no metric"
    assert named - exported_names() == set()


def test_every_metric_the_alert_rules_name_is_exported() -> None:
    named = set(METRIC.findall((DEPLOY / "prometheus" / "alerts.yml").read_text()))
    assert len(named) >= 4
    assert named - exported_names() == set()


def test_the_check_catches_a_metric_that_is_not_exported() -> None:
    assert {"chat_outbox_rows_typo"} - exported_names() == {"chat_outbox_rows_typo"}
