"""Several relays on one real database: no double publish, order kept, crashed claims taken
over; and PostgreSQL's LISTEN/NOTIFY wake-up."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import timedelta

import attrs
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import ManualClock, SystemClock, uuid4_event_id
from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.claims import LeasedClaims, LockedClaims, lease_heads
from chat_outbox.adapters.sql.wakeups import wakeups_for
from chat_outbox.application.ports import MessageBus, OutboxClaims, OutgoingRecord, PublishResult
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.application.relay.loop import Polling, run_relay
from chat_outbox.application.relay.relaying import Relay, RelayReport
from chat_outbox.application.relay.sharing import RelayMembership, RelayShares
from chat_outbox.domain import ChatMessage, Envelope, OutboxStatus
from tests.integration.relays import leasing_relay
from tests.integration.test_sql_outbox import outbox_row

pytestmark = pytest.mark.integration


@attrs.define
class SequencedBus(MessageBus):
    """Stamps every record with a global sequence number, across relays sharing it."""

    counter: itertools.count[int]
    sent: list[tuple[int, OutgoingRecord]]
    delay: float = 0.0
    publishing: int = 0
    most_publishing: int = 0
    """The most publishes that were waiting on this bus at once."""

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        self.publishing += 1
        self.most_publishing = max(self.most_publishing, self.publishing)
        await asyncio.sleep(self.delay)  # a broker round trip, so relays overlap
        self.publishing -= 1
        self.sent.extend((next(self.counter), record) for record in records)
        return [None] * len(records)


async def record_many(uow: SqlUnitOfWorkFactory, count: int, conversations: int) -> None:
    record = RecordChatMessage(uow, SystemClock(), uuid4_event_id, "t")
    for n in range(count):
        await record(
            ChatMessage.create(
                user_id=1, conversation_id=f"c{n % conversations}", role="user", message=f"m{n}"
            )
        )


async def race_two_relays(
    uow: SqlUnitOfWorkFactory, lease: timedelta | None, shared: bool = False
) -> list[RelayReport]:
    """Two relays racing over 300 rows in 10 conversations, sharing them out when `shared`;
    asserts each row was published exactly once, and within each conversation in recording
    order."""
    await record_many(uow, 300, 10)
    shares = [
        RelayMembership(uow, SystemClock(), f"relay-{n}", refresh=timedelta(0)).lane() for n in "ab"
    ]
    for share in shares if shared else ():
        await share.shard()  # both on the roster before either claims
    sent: list[tuple[int, OutgoingRecord]] = []
    counter = itertools.count()
    stopping = asyncio.Event()
    relays = [
        asyncio.create_task(
            run_relay(
                Relay(
                    claims_for(uow, lease, share if shared else None),
                    SequencedBus(counter, sent, 0.002),
                    SystemClock(),
                    batch_size=20,
                ),
                stopping,
                polling=Polling(minimum=0.01, maximum=0.05, coalesce=0),
            )
        )
        for share in shares
    ]
    await until_sent(sent, 300)
    stopping.set()
    reports = await asyncio.gather(*relays)
    assert sum(report.published for report in reports) == 300
    assert_sent_once_in_order(sent, 300)
    return reports


def claims_for(
    uow: SqlUnitOfWorkFactory, lease: timedelta | None, share: RelayShares | None
) -> OutboxClaims:
    """Leased claims, or locked ones (shared out by `share`) when `lease` is None."""
    if lease is None:
        return LockedClaims(uow, share)
    return LeasedClaims(uow, SystemClock(), lease)


async def until_sent(sent: list[tuple[int, OutgoingRecord]], rows: int) -> None:
    """Wait (up to 20 s) until `rows` records were sent."""
    for _ in range(1000):
        if len(sent) >= rows:
            return
        await asyncio.sleep(0.02)


def assert_sent_once_in_order(sent: list[tuple[int, OutgoingRecord]], rows: int) -> None:
    """Each of `rows` rows sent exactly once, each conversation's in recording order."""
    outbox_ids = [Envelope.decode(record.value).outbox_id for _, record in sent]
    assert len(outbox_ids) == len(set(outbox_ids)) == rows
    by_conversation: dict[str, list[int]] = {}
    for _, record in sorted(sent, key=lambda pair: pair[0]):
        by_conversation.setdefault(record.key, []).append(Envelope.decode(record.value).outbox_id)
    for conversation, ids in by_conversation.items():
        assert ids == sorted(ids), f"{conversation} published out of order"


async def test_two_relays_publish_every_row_once_and_keep_each_conversation_in_order(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """Two leasing relays racing over 300 rows in 10 conversations: each row is published
    exactly once, and within each conversation in recording order."""
    await race_two_relays(uow, lease=timedelta(seconds=60))


async def test_a_crashed_relays_claims_are_taken_over_after_the_lease(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Rows claimed by a relay that died are invisible until its lease ends, then another
    relay publishes them."""
    await record_many(uow, 5, 5)
    clock = ManualClock(SystemClock().now())
    async with uow() as unit:
        lease = timedelta(seconds=30)
        dead_relays_claim = await lease_heads(unit.connection, clock.now(), 10, lease)
        await unit.commit()
    survivor = leasing_relay(uow, InMemoryBus(), clock, lease=timedelta(seconds=30))
    assert (await survivor.relay_due()).claimed == 0
    clock.advance(timedelta(seconds=31))
    assert (await survivor.relay_due()).published == 5
    for message in dead_relays_claim:
        assert (await outbox_row(engine, message.id))["status"] == OutboxStatus.PUBLISHED.value


async def test_postgres_wakes_a_listening_relay_on_commit_and_others_poll(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """On PostgreSQL an outbox insert's commit wakes the listener; elsewhere waits time out."""
    wakeups = wakeups_for(engine)
    listener = await anext(wakeups)
    try:
        assert await listener.wait(0.05) is False  # nothing yet (this also starts listening)
        waiting = asyncio.create_task(listener.wait(2))
        await asyncio.sleep(0.05)
        await record_many(uow, 1, 1)
        woken = await asyncio.wait_for(waiting, 5)
    finally:
        await wakeups.aclose()
    assert woken is (engine.dialect.name == "postgresql")
