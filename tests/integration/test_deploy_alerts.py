"""The Prometheus alert rules pass promtool's check, and fire when they should (promtool's
rule unit tests). `make promtool` installs promtool from Debian's prometheus package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
# YAML folds the line breaks inside the quoted descriptions into spaces.
# Pending rows for 20 minutes with no publish at all, and one dead row appearing.
RULE_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'chat_outbox_rows{{status="pending"}}'
        values: '5x30'
      - series: 'chat_outbox_rows{{status="published"}}'
        values: '0x30'
      - series: 'chat_outbox_rows{{status="dead"}}'
        values: '0x10 1x20'
      - series: 'chat_outbox_oldest_pending_age_seconds'
        values: '0+60x30'
      - series: 'chat_outbox_publish_latency_seconds_count'
        values: '7x30'
    alert_rule_test:
      - eval_time: 25m
        alertname: ChatOutboxRelayDown
        exp_alerts:
          - exp_labels: {{severity: critical}}
            exp_annotations:
              summary: "No relay is publishing"
              description: "Rows wait in pending and nothing has been published for 10 minutes:
                every relay is down or cannot reach the bus."
      - eval_time: 25m
        alertname: ChatOutboxConsumerStopped
        exp_alerts: []
      - eval_time: 13m
        alertname: ChatOutboxDeadRowsGrowing
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: "Dead outbox rows are growing"
              description: "More rows are dead than 15 minutes ago; each holds back its
                conversation's later messages. See /admin/dead."
      - eval_time: 12m
        alertname: ChatOutboxOldestPendingTooOld
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: "A chat message has waited over 5 minutes to be published"
              description: "The oldest pending outbox row is 12m 0s old: the relay is slow,
                stuck behind retries, or down."
"""


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: run `make promtool` to install it")
    return found


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 rules found" in result.stdout


def test_the_alerts_fire_for_a_stopped_relay_growing_dead_rows_and_old_pending(
    tmp_path: Path,
) -> None:
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(RULE_TESTS.format(rules=RULES))
    result = subprocess.run(
        [promtool(), "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
