"""What the dashboard draws from stored rows: SVG charts, a message's timeline, trace links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chat_outbox.application.operate.insights import Persisted
from chat_outbox.application.operate.journeys import timeline
from chat_outbox.domain import HistoryEntry, OutboxMessage, OutboxStatus, Role
from chat_outbox.entrypoints.http.dashboard.charts import bar_chart
from chat_outbox.entrypoints.http.dashboard.render import environment, trace_link

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TRACE = "https://traces.example/{trace_id}"


def message(**changes: object) -> OutboxMessage:
    values: dict[str, object] = {
        "id": 7, "event_id": "e-7", "biz_type": "chat_history_persist", "topic": "chat",
        "message_key": "c1", "payload": "{}", "status": OutboxStatus.PENDING,
        "created_at": T0, "updated_at": T0, "next_retry_at": T0,
    }  # fmt: skip
    return OutboxMessage(**{**values, **changes})  # type: ignore[arg-type]


def test_a_chart_escapes_its_title_and_scales_bars_to_the_peak() -> None:
    svg = str(bar_chart('<script>"x"</script>', [0, 5, 10], 3))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "15 total · peak 10/min" in svg
    assert svg.count("<rect") == 3
    assert 'height="74.0"' in svg  # the peak fills the plot


def test_a_small_nonzero_count_still_shows_a_bar() -> None:
    svg = str(bar_chart("t", [1, 1000], 2))
    assert 'height="1.0"' in svg


def test_a_consumed_messages_timeline_has_each_step_and_the_delays_between() -> None:
    consumed = message(
        status=OutboxStatus.CONSUMED,
        published_at=T0 + timedelta(seconds=2),
        consumed_at=T0 + timedelta(seconds=3),
    )
    entry = HistoryEntry("e-7", 7, "c1", 1, Role.USER, "hi", T0)
    steps = timeline(consumed, Persisted(entry, T0 + timedelta(seconds=3)))
    assert [(s.label, s.since_previous) for s in steps] == [
        ("recorded", None),
        ("published", timedelta(seconds=2)),
        ("consumed", timedelta(seconds=1)),
        ("in chat history", timedelta(0)),
    ]


def test_a_dead_messages_timeline_tells_its_attempts_and_last_error() -> None:
    dead = message(
        status=OutboxStatus.DEAD, retry_count=3, last_error="boom", updated_at=T0 + timedelta(1)
    )
    labels = {s.label: s for s in timeline(dead, None)}
    assert labels["failed"].detail == "3 failed attempts of 20 allowed; last error: boom"
    assert labels["dead"].at == T0 + timedelta(1)


def test_a_requeued_messages_timeline_says_its_retries_were_reset() -> None:
    requeued = message(retry_count=0, last_error="boom")
    [_, failed] = timeline(requeued, None)
    assert failed.label == "failed before a requeue"
    assert failed.detail == "retries reset by a requeue; last error: boom"


@pytest.mark.parametrize(
    ("traceparent", "link"),
    [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "https://traces.example/4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        ('00-"><script>-00f067aa0ba902b7-01', None),
        (None, None),
    ],
)
def test_only_a_well_formed_traceparent_becomes_a_trace_link(
    traceparent: str | None, link: str | None
) -> None:
    assert trace_link(TRACE, traceparent) == link


def test_no_trace_link_without_a_template() -> None:
    assert trace_link("", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") is None


@pytest.mark.parametrize(
    "template",
    ["javascript:alert(1)//{trace_id}", " data:text/html,{trace_id}", "{trace_id}:x"],
)
def test_a_trace_template_that_is_not_http_never_becomes_a_link(template: str) -> None:
    """Checked when the setting is read; checked again where the link is made."""
    assert trace_link(template, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") is None


def test_a_payload_nested_too_deeply_for_the_json_parser_is_shown_as_it_is() -> None:
    payload = "[" * 100_000
    assert environment.filters["chat_text"](payload) == payload
