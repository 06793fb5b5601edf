"""Record headers as the Kafka source hands them to the consumer."""

from __future__ import annotations

import pytest

from chat_outbox.adapters.kafka.source import headers_of

pytestmark = pytest.mark.unit


def test_a_null_header_value_reads_as_empty_bytes() -> None:
    """A foreign producer's null header value must not crash the fetch (and so the batch)."""
    assert headers_of([("traceparent", None), ("event_id", b"e-1")]) == (
        ("traceparent", b""),
        ("event_id", b"e-1"),
    )
