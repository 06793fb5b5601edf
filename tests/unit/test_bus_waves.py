"""Waves: how a bus whose records travel independently keeps the port's key order."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest

from chat_outbox.adapters.waves import publish_in_waves
from chat_outbox.application.ports import OutgoingRecord, PublishResult
from chat_outbox.domain import PublishFailure

pytestmark = pytest.mark.unit


@attrs.define
class Broker:
    """Takes each record on its own; refuses the values in `refuse`; keeps every call."""

    refuse: set[bytes] = attrs.field(factory=set)
    calls: list[list[bytes]] = attrs.field(factory=list)

    async def send(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        self.calls.append([record.value for record in records])
        return [PublishFailure("refused") if r.value in self.refuse else None for r in records]


def batch(*pairs: str) -> list[OutgoingRecord]:
    """Records from "key:value" strings, on one topic unless the key says "topic/key"."""
    records = []
    for pair in pairs:
        key, value = pair.split(":")
        topic, _, key = key.rpartition("/")
        records.append(OutgoingRecord(topic or "t", key, value.encode()))
    return records


async def test_each_wave_holds_each_keys_next_record() -> None:
    """The nth call carries every key's nth record, in call order."""
    broker = Broker()
    results = await publish_in_waves(batch("a:a1", "b:b1", "a:a2", "a:a3", "b:b2"), broker.send)
    assert results == [None] * 5
    assert broker.calls == [[b"a1", b"b1"], [b"a2", b"b2"], [b"a3"]]


async def test_a_failed_record_stops_its_key_and_reports_the_rest_of_it_failed() -> None:
    """a2 is refused: a3 is never sent and reports why; b goes on."""
    broker = Broker(refuse={b"a2"})
    results = await publish_in_waves(batch("a:a1", "a:a2", "b:b1", "a:a3", "b:b2"), broker.send)
    assert [result is None for result in results] == [True, False, True, False, True]
    assert broker.calls == [[b"a1", b"b1"], [b"a2", b"b2"]]
    stopped = results[3]
    assert stopped is not None
    assert "an earlier record of its key failed: refused" in stopped.reason


async def test_a_key_stops_across_topics() -> None:
    """A key's record on another topic waits behind its failure on the first."""
    broker = Broker(refuse={b"a1"})
    results = await publish_in_waves(batch("x/a:a1", "y/a:a2", "x/b:b1"), broker.send)
    assert [result is None for result in results] == [False, False, True]
    assert broker.calls == [[b"a1", b"b1"]]
