"""The contract every bus adapter keeps, run against each one (tests/integration/buses.py):
per-record publish outcomes, redelivery of what was not acknowledged, acknowledgement only
after the handler's commit, poison records parked without blocking, and order per key."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.codec import FastEnvelopeCodec
from chat_outbox.adapters.memory import InMemoryStore, InMemoryUnitOfWork
from chat_outbox.application.consume.consuming import Consumer, ConsumeReport
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.application.ports import MessageSource, OutgoingRecord, UnitOfWorkFactory
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.application.relay.relaying import headers_for
from chat_outbox.domain import ChatMessage, Role
from tests.integration.buses import (
    BROKER_BUS_NAMES,
    BusHarness,
    RefusingCommits,
    fetch_at_least,
    fetch_rest,
    values,
)

pytestmark = pytest.mark.integration
on_brokers = pytest.mark.parametrize("bus_endpoint", BROKER_BUS_NAMES, indirect=True)


def plain(
    topic: str, key: str, text: str, headers: dict[str, bytes] | None = None
) -> OutgoingRecord:
    return OutgoingRecord(topic, key, text.encode(), tuple((headers or {}).items()))


async def chat_records(
    store: InMemoryStore, topic: str, conversations: list[str], rounds: int
) -> list[OutgoingRecord]:
    """Valid envelopes of messages recorded in `store`, as the relay would publish them."""
    uow: UnitOfWorkFactory = lambda: InMemoryUnitOfWork(store)  # noqa: E731
    record = RecordChatMessage(uow, SystemClock(), uuid4_event_id, topic)
    records = []
    for n in range(rounds):
        for conversation in conversations:
            chat = ChatMessage(7, conversation, Role.USER, f"{conversation} #{n}")
            message = await record(chat)
            value = FastEnvelopeCodec().encode(message)
            records.append(OutgoingRecord(topic, conversation, value, headers_for(message)))
    return records


async def consume_all(consumer: Consumer, expected: int, within: float = 30.0) -> ConsumeReport:
    """Consume batches until `expected` records were received."""
    total = ConsumeReport()
    for _ in range(int(within / 0.5)):
        report = await consumer.consume_batch(timeout=0.5)
        total = ConsumeReport(
            *(a + b for a, b in zip(attrs_tuple(total), attrs_tuple(report), strict=True))
        )
        if total.received >= expected:
            return total
    pytest.fail(f"consumed {total} in {within:.0f} s, expected {expected} records")


def attrs_tuple(report: ConsumeReport) -> tuple[int, int, int, int]:
    return report.received, report.persisted, report.duplicates, report.dead_lettered


def consumer_of(source: MessageSource, uow: UnitOfWorkFactory) -> Consumer:
    return Consumer(source, UnitOfWorkHistoryWriter(uow), SystemClock())


async def test_each_record_of_a_batch_gets_its_own_outcome(bus_harness: BusHarness) -> None:
    """An oversized record fails for good while the records sent with it are acknowledged
    and delivered."""
    topic = bus_harness.topic
    batch = [plain(topic, f"k{n}", f"small {n}") for n in range(4)]
    batch.insert(2, plain(topic, "k-big", "x" * 3000))

    results = await bus_harness.bus(max_record_bytes=2000).publish(batch)

    assert [result is None for result in results] == [True, True, False, True, True]
    assert [(r.retryable, r.counted) for r in results if r is not None] == [(False, True)]
    delivered = await fetch_at_least(bus_harness.source(), 4)
    assert sorted(values(delivered)) == [f"small {n}".encode() for n in range(4)]


async def test_a_record_arrives_with_its_key_value_and_headers(bus_harness: BusHarness) -> None:
    """What a consumer fetches carries the published key, value and headers unchanged."""
    headers = {"event_id": b"e-1", "biz_type": b"chat_history_persist", "schema_version": b"1"}
    sent = plain(bus_harness.topic, "conversation-a", "hello", headers)

    assert await bus_harness.bus().publish([sent]) == [None]

    [received] = await fetch_at_least(bus_harness.source(), 1)
    assert (received.key, received.value) == (b"conversation-a", b"hello")
    assert dict(received.headers) == headers


@on_brokers
async def test_an_unreachable_broker_fails_every_record_without_using_an_attempt(
    bus_harness: BusHarness,
) -> None:
    """With no broker to reach, publish returns a retryable, uncounted failure per record
    instead of raising."""
    batch = [plain(bus_harness.topic, f"k{n}", f"m{n}") for n in range(3)]

    results = await bus_harness.unreachable_bus().publish(batch)

    outcomes = [None if r is None else (r.retryable, r.counted) for r in results]
    assert outcomes == [(True, False)] * 3


async def test_unacknowledged_records_are_redelivered_after_the_consumer_dies(
    bus_harness: BusHarness,
) -> None:
    """Records a consumer fetched but never acknowledged go to the next consumer."""
    sent = [plain(bus_harness.topic, f"k{n % 3}", f"m{n}") for n in range(12)]
    await bus_harness.bus().publish(sent)
    first = bus_harness.source()
    assert len(await fetch_at_least(first, 12)) == 12

    successor = await bus_harness.crash(first)

    redelivered = await fetch_at_least(successor, 12)
    assert sorted(values(redelivered)) == sorted(record.value for record in sent)


async def test_the_next_consumer_resumes_after_the_last_acknowledged_record_in_order(
    bus_harness: BusHarness,
) -> None:
    """After acknowledging the first 6 of 15 records of one key, a dead consumer's
    successor gets exactly the other 9, in publish order."""
    sent = [plain(bus_harness.topic, "one-key", f"m{n:02}") for n in range(15)]
    await bus_harness.bus().publish(sent)
    first = bus_harness.source()
    fetched = await fetch_at_least(first, 15)
    await first.acknowledge(fetched[:6])

    successor = await bus_harness.crash(first)

    rest = await fetch_at_least(successor, 9)
    rest += await fetch_rest(successor)
    assert values(rest) == [record.value for record in sent[6:]]


async def test_a_batch_is_acknowledged_only_after_the_handler_commits(
    bus_harness: BusHarness,
) -> None:
    """When the handler's commit fails, nothing is acknowledged: the next consumer gets the
    whole batch and persists it."""
    store = InMemoryStore()
    records = await chat_records(store, bus_harness.topic, ["conv-a", "conv-b"], 5)
    await bus_harness.bus().publish(records)
    refused = consumer_of(bus_harness.source(), RefusingCommits(store))
    refused.stopping.set()  # give up at the first failed commit instead of retrying
    with pytest.raises(StoreUnavailable):
        await consume_all(refused, len(records))
    assert store.history == {}

    successor = await bus_harness.crash(refused.source)
    report = await consume_all(consumer_of(successor, lambda: InMemoryUnitOfWork(store)), 10)

    assert report.persisted == len(store.history) == 10


async def test_poison_records_are_dead_lettered_without_blocking_the_records_behind_them(
    bus_harness: BusHarness,
) -> None:
    """Undecodable records go to the dead-letter destination with the reason in a
    `dlq_reason` header, and the valid records of the same key after them are persisted."""
    store = InMemoryStore()
    topic = bus_harness.topic
    incomplete = json.dumps({"type": "order_created", "at": datetime.now(UTC).isoformat()})
    poison = [plain(topic, "conv-p", "not json {"), plain(topic, "conv-p", incomplete)]
    valid = await chat_records(store, topic, ["conv-p"], 5)
    await bus_harness.bus().publish([*poison, *valid])

    report = await consume_all(
        consumer_of(bus_harness.source(), lambda: InMemoryUnitOfWork(store)), 7
    )

    assert (report.dead_lettered, report.persisted) == (2, 5)
    parked = await bus_harness.dead_letters(expected=2)
    reasons = {value: headers["dlq_reason"].decode() for value, headers in parked}
    assert reasons.keys() == {record.value for record in poison}
    assert "not JSON" in reasons[b"not json {"]
    assert "missing field" in reasons[incomplete.encode()]


async def test_records_of_one_key_arrive_in_publish_order(bus_harness: BusHarness) -> None:
    """Records of each key, published one per key per batch as the relay does, are
    fetched in publish order, whatever the interleaving between keys."""
    keys = [f"conv-{uuid.uuid4().hex[:6]}-{n}" for n in range(12)]
    bus = bus_harness.bus()
    for n in range(15):
        assert await bus.publish(
            [plain(bus_harness.topic, key, f"{key}/{n:02}") for key in keys]
        ) == [None] * len(keys)

    fetched = await fetch_at_least(bus_harness.source(), 12 * 15)

    by_key: defaultdict[bytes, list[bytes]] = defaultdict(list)
    for record in fetched:
        assert record.key is not None
        by_key[record.key].append(record.value or b"")
    assert len(by_key) == 12
    for key, arrived in by_key.items():
        assert arrived == [f"{key.decode()}/{n:02}".encode() for n in range(15)]


async def test_a_failed_record_stops_its_key_for_the_rest_of_the_call(
    bus_harness: BusHarness,
) -> None:
    """An oversized record fails for good; the key's later record is reported failed and
    never delivered, while the other key's records are delivered."""
    topic = bus_harness.topic
    batch = [plain(topic, "a", "a1"), plain(topic, "a", "x" * 3000), plain(topic, "a", "a3")]
    batch += [plain(topic, "b", "b1"), plain(topic, "b", "b2")]

    results = await bus_harness.bus(max_record_bytes=2000).publish(batch)

    assert [result is None for result in results] == [True, False, False, True, True]
    assert results[1] is not None
    assert not results[1].retryable
    source = bus_harness.source()
    delivered = await fetch_at_least(source, 3)
    delivered += await fetch_rest(source)
    assert sorted(values(delivered)) == [b"a1", b"b1", b"b2"]


async def test_a_failed_record_stops_its_key_in_every_topic_of_the_call(
    bus_harness: BusHarness,
) -> None:
    """A key's record on another topic, after its failed one, is reported failed too (a
    conversation whose rows span two topics keeps its order); other keys go on."""
    topic = bus_harness.topic
    elsewhere = f"{topic}.elsewhere"
    batch = [plain(topic, "a", "x" * 3000), plain(elsewhere, "a", "a2"), plain(topic, "b", "b1")]

    results = await bus_harness.bus(max_record_bytes=2000).publish(batch)

    assert [result is None for result in results] == [False, False, True]
    source = bus_harness.source()
    delivered = await fetch_at_least(source, 1)
    delivered += await fetch_rest(source)
    assert values(delivered) == [b"b1"]


async def test_records_of_one_key_in_one_call_arrive_in_order_beyond_one_batch_of_bytes(
    bus_harness: BusHarness,
) -> None:
    """With a 2,000-byte limit, 60 records of two keys in one call cannot travel as one
    batch per partition; each key's records still arrive in call order."""
    keys = ["conv-left", "conv-right"]
    batch = [
        plain(bus_harness.topic, keys[n % 2], f"{keys[n % 2]}/{n:02} " + "y" * 200)
        for n in range(60)
    ]

    assert await bus_harness.bus(max_record_bytes=2000).publish(batch) == [None] * 60

    fetched = await fetch_at_least(bus_harness.source(), 60)
    for key in keys:
        arrived = [r.value for r in fetched if r.key == key.encode()]
        assert arrived == [r.value for r in batch if r.key == key]


async def test_a_source_reads_every_topic_it_is_given_and_each_record_keeps_its_topic(
    bus_harness: BusHarness,
) -> None:
    """An event type with a topic of its own is read by the same consumer."""
    bus, source = bus_harness.bus(), bus_harness.source()
    sent = [
        plain(bus_harness.topic, "k-1", "chat one"),
        plain(bus_harness.other_topic, "k-1", "event one"),
        plain(bus_harness.other_topic, "k-2", "event two"),
    ]
    assert await bus.publish(sent) == [None, None, None]

    got = await fetch_at_least(source, 3)

    assert sorted((r.topic, r.key, r.value) for r in got) == sorted(
        (r.topic, r.key.encode(), r.value) for r in sent
    )
    await source.acknowledge(got)
