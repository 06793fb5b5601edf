"""One contract for the store: the in-memory fake and the SQL adapters on SQLite, PostgreSQL
and MariaDB pass the same behaviour tests, so the fake the unit tests lean on cannot drift."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import uuid4_event_id
from chat_outbox.application.errors import DuplicateEvent
from chat_outbox.application.ports import DeadSelector
from chat_outbox.domain import (
    BIZ_TYPE_CHAT_HISTORY,
    TABLE,
    HistoryEntry,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
    PublishFailure,
    Role,
    Transition,
    apply_to,
    consumed,
    handler_failed,
    requeued,
    swept,
)
from chat_outbox.domain.envelope import Provenance
from tests.integration.store_twins import Operation, Twins, operations
from tests.integration.stores import (
    CONTRACT_BACKENDS,
    LEASE,
    RETRY,
    T0,
    Store,
    add,
    apply,
    claim,
    contract_engine,
    empty_store,
    get,
    new_message,
    seed,
)

pytestmark = pytest.mark.integration

_P, _U, _C, _D = (
    OutboxStatus.PENDING,
    OutboxStatus.PUBLISHED,
    OutboxStatus.CONSUMED,
    OutboxStatus.DEAD,
)
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="session", params=CONTRACT_BACKENDS)
async def contract_backend(
    request: pytest.FixtureRequest, database_dir: Path
) -> AsyncIterator[tuple[str, AsyncEngine | None]]:
    backend: str = request.param
    if backend == "memory":
        yield backend, None
        return
    try:
        engine = await contract_engine(backend, database_dir)
    except Exception as error:  # noqa: BLE001 - turn a missing server into a clear failure
        pytest.fail(f"{backend} is not usable: {error}. Run `make services` to start it.")
    yield backend, engine
    await engine.dispose()


@pytest.fixture
async def store(contract_backend: tuple[str, AsyncEngine | None]) -> Store:
    return await empty_store(*contract_backend)


@pytest.fixture
def emptied(contract_backend: tuple[str, AsyncEngine | None]) -> Callable[[], Awaitable[Store]]:
    """The backend emptied again, for a test that runs once per claim mode."""
    return lambda: empty_store(*contract_backend)


# Recording and reading back


async def test_an_added_message_reads_back_whole_by_id_and_by_event_id(store: Store) -> None:
    """add returns the pending row it stored, due at once, and get and by_event_id read back
    exactly that row, every field."""
    recorded = new_message("c-round-trip", T0)
    added = await add(store, recorded)
    expected = OutboxMessage(
        id=added.id,
        event_id=recorded.event_id,
        biz_type=recorded.biz_type,
        topic=recorded.topic,
        message_key=recorded.message_key,
        payload=recorded.payload,
        status=_P,
        created_at=T0,
        updated_at=T0,
        next_retry_at=T0,
        max_retry=recorded.max_retry,
        traceparent=recorded.traceparent,
    )
    async with store.open() as unit:
        by_id = await unit.outbox.get(added.id)
        by_event_id = await unit.outbox.by_event_id(recorded.event_id)
    assert added == expected
    assert by_id == expected
    assert by_event_id == expected


async def test_an_unknown_id_or_event_id_reads_as_none(store: Store) -> None:
    """get and by_event_id say None for a row that was never recorded."""
    added = await seed(store, _P)
    async with store.open() as unit:
        assert await unit.outbox.get(added.id + 1) is None
        assert await unit.outbox.by_event_id(uuid4_event_id()) is None


async def test_a_second_message_with_the_same_event_id_is_a_duplicate_event(
    store: Store,
) -> None:
    """The event id is unique: a second add raises DuplicateEvent and the first row stays."""
    first = await seed(store, _P)
    async with store.open() as unit:
        with pytest.raises(DuplicateEvent):
            await unit.outbox.add(new_message("c-other", T0 + HOUR, event_id=first.event_id))
    async with store.open() as unit:
        assert await unit.outbox.by_event_id(first.event_id) == first
        assert await unit.outbox.newest_id() == first.id


async def test_a_message_not_committed_is_not_stored(store: Store) -> None:
    """Leaving a unit of work without commit() discards what it added."""
    recorded = new_message()
    async with store.open() as unit:
        await unit.outbox.add(recorded)
    async with store.open() as unit:
        assert await unit.outbox.by_event_id(recorded.event_id) is None
        assert await unit.outbox.newest_id() == 0


async def test_newest_id_is_zero_when_empty_then_the_highest_id_recorded(store: Store) -> None:
    """newest_id is 0 for an empty outbox, then the id of the latest row added."""
    async with store.open() as unit:
        assert await unit.outbox.newest_id() == 0
    ids = [(await seed(store, _P, f"c-{n}")).id for n in range(3)]
    assert ids == sorted(ids)
    async with store.open() as unit:
        assert await unit.outbox.newest_id() == ids[-1]


# Guarded transitions


def raw_transition(event: OutboxEvent, outbox_id: int) -> Transition:
    """A transition for `event` as the domain would make it, without loading the row."""
    at = T0 + HOUR
    if event is OutboxEvent.PUBLISH_ACKED:
        return Transition(outbox_id, event, _U, at)
    if event is OutboxEvent.PUBLISH_FAILED:
        return Transition(outbox_id, event, _P, at, 1, at + timedelta(seconds=5), "not now")
    if event is OutboxEvent.PUBLISH_FAILED_FATALLY:
        return Transition(outbox_id, event, _D, at, 1, None, "never")
    if event is OutboxEvent.HANDLER_FAILED:
        return handler_failed(outbox_id, at, "handler refused")
    return {
        OutboxEvent.CONSUMED: consumed,
        OutboxEvent.REQUEUED: requeued,
        OutboxEvent.SWEPT: swept,
    }[event](outbox_id, at)


def table_cells(changes: bool) -> list[tuple[OutboxStatus, OutboxEvent]]:
    """The (status, event) cells of the domain's table that change a row, or those that do not."""
    return [
        (status, event)
        for status, row in TABLE.items()
        for event, target in row.items()
        if isinstance(target, OutboxStatus) is changes
    ]


async def test_a_transition_outside_its_guard_changes_nothing(store: Store) -> None:
    """For every cell of the table that is a no-op or refused, apply writes nothing and says 0:
    a late or stale write never moves a row (invariants 1 and 2)."""
    for status, event in table_cells(changes=False):
        before = await seed(store, status, f"c-{status}-{event}")
        assert await apply(store, [raw_transition(event, before.id)]) == 0, (status, event)
        assert await get(store, before.id) == before, (status, event)


async def test_a_transition_inside_its_guard_changes_the_row_as_the_domain_says(
    store: Store,
) -> None:
    """For every cell of the table that moves a row, apply says 1 and the row reads back as
    domain.apply_to writes the transition onto it."""
    for status, event in table_cells(changes=True):
        expected = await seed(store, status, f"c-{status}-{event}")
        transition = raw_transition(event, expected.id)
        apply_to(expected, transition)
        assert await apply(store, [transition]) == 1, (status, event)
        assert await get(store, expected.id) == expected, (status, event)


async def test_apply_counts_only_the_rows_a_batch_changed(store: Store) -> None:
    """One batch of acks for two pending rows, a consumed row and a missing id changes the two."""
    rows = [await seed(store, status, f"c-{n}") for n, status in enumerate((_P, _C, _P))]
    ids = [row.id for row in rows]
    acks = [raw_transition(OutboxEvent.PUBLISH_ACKED, i) for i in (*ids, ids[-1] + 100)]
    assert await apply(store, acks) == 2
    assert [(await get(store, i)).status for i in ids] == [_U, _C, _U]


Steps = Callable[[OutboxMessage], list[Transition | None]]
LATER = T0 + HOUR
BUSY = PublishFailure("broker busy")
JOURNEYS: dict[str, tuple[OutboxStatus, Steps]] = {
    "publish-acked": (_P, lambda m: [m.mark_published(LATER)]),
    "retryable-failure": (_P, lambda m: [m.record_publish_failure(BUSY, LATER, RETRY)]),
    "fatal-failure": (
        _P,
        lambda m: [m.record_publish_failure(PublishFailure.fatal("too big"), LATER, RETRY)],
    ),
    "retries-exhausted": (
        _D,
        lambda m: [
            m.requeue(LATER),
            *(m.record_publish_failure(BUSY, LATER + n * SECOND, RETRY) for n in range(3)),
        ],
    ),
    "consumed-after-publish": (_U, lambda m: [m.mark_consumed(LATER)]),
    "consumed-while-pending": (_P, lambda m: [m.mark_consumed(LATER)]),
    "consumed-while-dead": (_D, lambda m: [m.mark_consumed(LATER)]),
    "requeued": (_D, lambda m: [m.requeue(LATER)]),
    "swept": (_U, lambda m: [m.sweep(LATER)]),
}


@pytest.mark.parametrize("journey", JOURNEYS)
async def test_an_entity_transition_reads_back_as_the_entity_ends(
    store: Store, journey: str
) -> None:
    """The transitions the entity makes (ack, retry with backoff, death, consumption,
    requeue, sweep), applied in turn, leave the stored row equal to the entity: the domain,
    not the test, computes every field."""
    start, steps = JOURNEYS[journey]
    stored = await seed(store, start)
    entity = attrs.evolve(stored)
    for transition in steps(entity):
        assert transition is not None
        assert await apply(store, [transition]) == 1, transition
    assert await get(store, stored.id) == entity
    assert entity != stored


# The dead filter, held rows and stats


async def dead_ids(
    store: Store, selector: DeadSelector, limit: int = 100, after: int = 0
) -> list[int]:
    async with store.open() as unit:
        return [message.id for message in await unit.outbox.dead(selector, limit, after)]


async def test_the_dead_filter_selects_by_id_ids_and_conversation_among_dead_rows_only(
    store: Store,
) -> None:
    """An id, a list of ids (with or without the single id) and a conversation each narrow
    the dead rows, in id order; a live row never shows, whatever the selector says."""
    x1, y1, x2 = [await seed(store, _D, c) for c in ("x", "y", "x")]
    live = [await seed(store, status, "x") for status in (_P, _U, _C)]
    live_ids = tuple(row.id for row in live)
    assert await dead_ids(store, DeadSelector()) == [x1.id, y1.id, x2.id]
    assert await dead_ids(store, DeadSelector(outbox_id=y1.id)) == [y1.id]
    assert await dead_ids(store, DeadSelector(outbox_ids=(x2.id, x1.id, *live_ids))) == [
        x1.id,
        x2.id,
    ]
    assert await dead_ids(store, DeadSelector(outbox_id=x1.id, outbox_ids=(y1.id,))) == [
        x1.id,
        y1.id,
    ]
    assert await dead_ids(store, DeadSelector(conversation_id="x")) == [x1.id, x2.id]
    assert await dead_ids(store, DeadSelector(outbox_id=y1.id, conversation_id="x")) == []
    assert await dead_ids(store, DeadSelector(conversation_id="absent")) == []


async def test_the_dead_filter_selects_by_event_type(store: Store) -> None:
    chat_dead = await seed(store, _D, "x")
    other = await add(store, new_message("x", biz_type="agent_run.finished"))
    transition = other.record_handler_failure("refused", T0)
    assert transition is not None
    assert await apply(store, [transition]) == 1
    assert await dead_ids(store, DeadSelector(event_type="agent_run.finished")) == [other.id]
    assert await dead_ids(store, DeadSelector(event_type=BIZ_TYPE_CHAT_HISTORY)) == [chat_dead.id]
    assert await dead_ids(store, DeadSelector(event_type="absent.type")) == []


async def test_the_dead_filter_selects_by_when_a_row_died_since_included_until_excluded(
    store: Store,
) -> None:
    """died_since includes a row that died at that instant; died_until excludes it."""
    early, edge, late = [await seed(store, _D, "x", T0 + n * HOUR) for n in range(3)]
    await seed(store, _P, "x", T0 + HOUR)
    at_edge = T0 + HOUR
    assert await dead_ids(store, DeadSelector(died_since=at_edge)) == [edge.id, late.id]
    assert await dead_ids(store, DeadSelector(died_until=at_edge)) == [early.id]
    assert await dead_ids(store, DeadSelector(died_since=at_edge, died_until=at_edge + SECOND)) == [
        edge.id
    ]
    assert await dead_ids(store, DeadSelector(died_since=at_edge, died_until=at_edge)) == []


async def test_dead_rows_page_by_limit_behind_an_id_cursor(store: Store) -> None:
    """dead(limit, after_id) gives the next `limit` dead rows past the cursor, then none."""
    dead = [(await seed(store, _D, f"c-{n % 2}")).id for n in range(5)]
    assert await dead_ids(store, DeadSelector(), 2) == dead[:2]
    assert await dead_ids(store, DeadSelector(), 2, dead[1]) == dead[2:4]
    assert await dead_ids(store, DeadSelector(), 2, dead[3]) == dead[4:]
    assert await dead_ids(store, DeadSelector(), 2, dead[4]) == []
    assert await dead_ids(store, DeadSelector(conversation_id="c-1"), 1, dead[1]) == [dead[3]]


async def test_held_behind_dead_counts_pending_rows_after_a_dead_one_per_conversation(
    store: Store,
) -> None:
    """Only pending rows later than a dead row of their conversation are held: not earlier
    ones, not published ones, not other conversations'; an unknown conversation holds 0."""
    await seed(store, _P, "held")
    await seed(store, _D, "held")
    for status in (_P, _P, _U, _C, _D, _P):
        await seed(store, status, "held")
    await seed(store, _P, "free")
    await seed(store, _D, "free")
    async with store.open() as unit:
        held = await unit.outbox.held_behind_dead(["held", "free", "absent"])
        nothing = await unit.outbox.held_behind_dead([])
    assert held == {"held": 3, "free": 0, "absent": 0}
    assert nothing == {}


async def test_stats_count_every_status_and_the_oldest_pending_and_published_times(
    store: Store,
) -> None:
    """Counts cover every status (zeros included); the oldest pending time is the earliest
    pending created_at, the oldest published the earliest published_at; held counts rows
    waiting behind a dead one."""
    await seed(store, _D, "c-1", T0 - 5 * HOUR)
    await seed(store, _P, "c-1", T0 + 2 * HOUR)
    await seed(store, _P, "c-2", T0 + HOUR)
    await seed(store, _U, "c-3", T0 + 3 * HOUR)
    await seed(store, _U, "c-4", T0 + 4 * HOUR)
    swept_back = await seed(store, _U, "c-5", T0 - 4 * HOUR)  # pending again, created earliest
    transition = swept_back.sweep(T0 + 5 * HOUR)
    assert transition is not None
    assert await apply(store, [transition]) == 1
    async with store.open() as unit:
        stats = await unit.outbox.stats()
    assert stats.counts == {_P: 3, _U: 2, _C: 0, _D: 1}
    assert stats.dead == 1
    assert stats.oldest_pending_at == T0 - 4 * HOUR
    assert stats.oldest_published_at == T0 + 3 * HOUR
    assert stats.held == 1


async def test_stats_count_each_event_types_rows_by_status(store: Store) -> None:
    """by_type holds every type with rows, each with every status, and adds up to counts."""
    await seed(store, _D, "c-1")
    await seed(store, _P, "c-2")
    other = await add(store, new_message("run-1", biz_type="agent_run.finished"))
    transition = other.mark_published(T0)
    assert transition is not None
    assert await apply(store, [transition]) == 1
    await add(store, new_message("run-2", biz_type="agent_run.finished"))
    async with store.open() as unit:
        stats = await unit.outbox.stats()
    assert stats.by_type == {
        BIZ_TYPE_CHAT_HISTORY: {_P: 1, _U: 0, _C: 0, _D: 1},
        "agent_run.finished": {_P: 1, _U: 1, _C: 0, _D: 0},
    }
    assert stats.counts == {_P: 2, _U: 1, _C: 0, _D: 1}


async def test_stats_of_an_empty_outbox_count_nothing_and_have_no_oldest_times(
    store: Store,
) -> None:
    """With no rows: zero counts for every status, no oldest times, nothing held."""
    async with store.open() as unit:
        stats = await unit.outbox.stats()
    assert stats.counts == dict.fromkeys(OutboxStatus, 0)
    assert (stats.oldest_pending_at, stats.oldest_published_at, stats.held) == (None, None, 0)


# Purging and stale published rows


async def stored_ids(store: Store, ids: list[int]) -> list[int]:
    async with store.open() as unit:
        return [i for i in ids if await unit.outbox.get(i) is not None]


async def test_purge_deletes_only_consumed_rows_older_than_the_cutoff(store: Store) -> None:
    """A consumed row before the cutoff goes; one consumed exactly at it, a later one and
    every unconsumed row stay."""
    cutoff = T0 + HOUR
    old = await seed(store, _C, "c-1", T0)
    kept = [
        await seed(store, _C, "c-1", cutoff),
        await seed(store, _C, "c-1", cutoff + SECOND),
        *[await seed(store, status, "c-2", T0) for status in (_P, _U, _D)],
    ]
    async with store.open() as unit:
        assert await unit.outbox.purge_consumed(cutoff, 100) == 1
        await unit.commit()
    every = [old.id, *(row.id for row in kept)]
    assert await stored_ids(store, every) == every[1:]


async def test_purge_deletes_at_most_the_limit_lowest_ids_first(store: Store) -> None:
    """A purge of limit 2 over five old consumed rows deletes the two lowest ids."""
    ids = [(await seed(store, _C, f"c-{n}", T0)).id for n in range(5)]
    async with store.open() as unit:
        assert await unit.outbox.purge_consumed(T0 + HOUR, 2) == 2
        await unit.commit()
    assert await stored_ids(store, ids) == ids[2:]


async def test_a_purged_id_is_never_given_to_a_new_message(store: Store) -> None:
    """After the newest rows are purged, the next message still gets a higher id, and
    newest_id does not go back."""
    purged = [(await seed(store, _C, "c-1", T0)).id for _ in range(2)]
    async with store.open() as unit:
        assert await unit.outbox.purge_consumed(T0 + HOUR, 10) == 2
        await unit.commit()
    assert (await seed(store, _P)).id > max(purged)


async def test_published_before_lists_published_rows_before_the_cutoff_in_id_order(
    store: Store,
) -> None:
    """Published rows whose published_at is before the cutoff, by id, up to the limit; not
    one published at the cutoff, nor a row swept back to pending that keeps its
    published_at."""
    cutoff = T0 + HOUR
    stale = [(await seed(store, _U, f"c-{n}", T0 + n * SECOND)).id for n in range(3)]
    await seed(store, _U, "c-edge", cutoff)
    back = await seed(store, _U, "c-swept", T0)
    transition = back.sweep(T0)
    assert transition is not None
    assert await apply(store, [transition]) == 1
    for status in (_P, _C, _D):
        await seed(store, status, "c-other", T0)
    async with store.open() as unit:
        assert await unit.outbox.published_before(cutoff, 100) == stale
        assert await unit.outbox.published_before(cutoff, 2) == stale[:2]


# Reading a conversation's first row and rows' provenance


async def test_first_of_is_the_lowest_id_chat_row_of_a_conversation_in_any_status(
    store: Store,
) -> None:
    """first_of skips another event type's row, returns the conversation's earliest chat
    row even when it is consumed, and None for a conversation never recorded."""
    await add(store, new_message("c-1", T0, biz_type="other_event"))
    first = await seed(store, _C, "c-1", T0 + SECOND)
    await seed(store, _P, "c-1", T0 + 2 * SECOND)
    async with store.open() as unit:
        assert await unit.outbox.first_of("c-1") == first
        assert await unit.outbox.first_of("c-2") is None


async def test_provenances_are_those_of_the_rows_that_exist(store: Store) -> None:
    """Each existing id maps to its row's provenance; a purged or unknown id is absent."""
    live = [await seed(store, status, f"c-{status}") for status in (_P, _U)]
    purged = await seed(store, _C, "c-gone", T0)
    async with store.open() as unit:
        assert await unit.outbox.purge_consumed(T0 + HOUR, 10) == 1
        await unit.commit()
    asked = [live[1].id, purged.id, live[0].id, live[1].id + 100]
    async with store.open() as unit:
        found = await unit.outbox.provenances(asked)
    assert found == {row.id: Provenance.of_row(row) for row in live}
    assert found[live[0].id] == Provenance(
        live[0].id, live[0].event_id, "c-pending", live[0].biz_type
    )


# Chat history


def entry(
    outbox_id: int, conversation: str = "c-1", *, event_id: str | None = None
) -> HistoryEntry:
    return HistoryEntry(
        event_id=event_id or uuid4_event_id(),
        outbox_id=outbox_id,
        conversation_id=conversation,
        user_id=7,
        role=Role.ASSISTANT,
        message=f"message {outbox_id} 世界",
        recorded_at=T0 + outbox_id * SECOND,
    )


async def add_history(store: Store, entries: list[HistoryEntry]) -> int:
    async with store.open() as unit:
        inserted = await unit.history.add_many(entries)
        await unit.commit()
    return inserted


async def test_history_inserts_only_new_event_ids_and_counts_them(store: Store) -> None:
    """add_many inserts entries whose event id is new and says how many; a redelivered
    event id keeps its first entry."""
    first = [entry(1), entry(2)]
    assert await add_history(store, first) == 2
    again = attrs.evolve(first[0], message="a forged text")
    assert await add_history(store, [again, entry(3)]) == 1
    assert await add_history(store, []) == 0
    async with store.open() as unit:
        stored = await unit.history.by_event_ids([first[0].event_id])
    assert stored == {first[0].event_id: first[0]}


async def test_a_history_batch_repeating_an_event_id_inserts_it_once(store: Store) -> None:
    """Two entries with one event id in the same batch count and store as one, the first."""
    original = entry(1)
    twin = attrs.evolve(original, message="the twin")
    assert await add_history(store, [original, twin, entry(2)]) == 2
    async with store.open() as unit:
        stored = await unit.history.by_event_ids([original.event_id])
    assert stored == {original.event_id: original}


async def test_history_by_event_ids_reads_back_every_field_of_the_stored_entries(
    store: Store,
) -> None:
    """by_event_ids returns each stored entry whole, keyed by event id, skipping unknown ids."""
    entries = [entry(n, f"c-{n}") for n in (1, 2, 3)]
    await add_history(store, entries)
    unknown = uuid4_event_id()
    async with store.open() as unit:
        found = await unit.history.by_event_ids([entries[2].event_id, unknown, entries[0].event_id])
    assert found == {e.event_id: e for e in (entries[0], entries[2])}


async def test_a_conversations_history_reads_in_recording_order_and_pages(store: Store) -> None:
    """for_conversation orders by outbox id whatever the insert order, keeps to its
    conversation, and pages by limit and an outbox-id cursor."""
    mine = [entry(n, "mine") for n in (5, 1, 4, 2)]
    await add_history(store, [mine[0], entry(3, "theirs")])
    await add_history(store, mine[1:])
    in_order = sorted(mine, key=lambda e: e.outbox_id)
    async with store.open() as unit:
        assert await unit.history.for_conversation("mine", 100) == in_order
        assert await unit.history.for_conversation("mine", 2) == in_order[:2]
        assert await unit.history.for_conversation("mine", 2, 2) == in_order[2:]
        assert await unit.history.for_conversation("absent", 10) == []


async def test_conversations_differing_only_by_case_or_a_trailing_space_are_distinct(
    store: Store,
) -> None:
    """Conversation ids compare exactly, as the fake's dictionaries do (MariaDB's default
    collation would not)."""
    dead = await seed(store, _D, "c-1")
    await seed(store, _P, "c-1")
    async with store.open() as unit:
        assert await unit.outbox.first_of("C-1") is None
        assert await unit.outbox.first_of("c-1 ") is None
        assert await unit.outbox.held_behind_dead(["c-1", "C-1", "c-1 "]) == {
            "c-1": 1,
            "C-1": 0,
            "c-1 ": 0,
        }
    assert await dead_ids(store, DeadSelector(conversation_id="c-1 ")) == []
    assert await dead_ids(store, DeadSelector(conversation_id="c-1")) == [dead.id]


# Claim order (invariant 6), for every claim mode of the backend: a lease claims one head
# per conversation; row locks (None) claim each conversation's run of due rows.


def mode_name(lease: timedelta | None) -> str:
    return "locked" if lease is None else "leased"


async def claimed_ids(
    store: Store, at: timedelta, limit: int, lease: timedelta | None
) -> list[int]:
    """The ids claimed at T0 + `at`, in the claim's order, checked against invariant 6: each
    claimed row has every earlier pending or dead row of its conversation ahead of it."""
    async with store.open() as unit:
        newest = await unit.outbox.newest_id()
        rows = [row for i in range(1, newest + 1) if (row := await unit.outbox.get(i))]
    claimed = await claim(store, T0 + at, limit, lease)
    ids = [message.id for message in claimed]
    for position, message in enumerate(claimed):
        earlier = {
            row.id
            for row in rows
            if row.message_key == message.message_key
            and row.id < message.id
            and row.status in (_P, _D)
        }
        assert earlier <= set(ids[:position]), (mode_name(lease), message.id, earlier, ids)
    return ids


async def test_a_claim_takes_due_rows_in_id_order_up_to_the_limit(
    emptied: Callable[[], Awaitable[Store]],
) -> None:
    """Rows come in recording (id) order, not by due time, and no more than the limit; a
    lease takes each conversation's head, row locks its run of due rows."""
    for lease in (await emptied()).claim_modes:
        store = await emptied()
        keys = ("a", "b", "a", "c", "a", "b")
        ids = [(await seed(store, _P, k, T0 - n * SECOND)).id for n, k in enumerate(keys)]
        a1, b1, a2, c1, _, _ = ids
        expected = {"leased": [a1, b1, c1], "locked": [a1, b1, a2]}[mode_name(lease)]
        assert await claimed_ids(store, HOUR, 3, lease) == expected
        if lease is None:  # locks end with the unit of work, so every row is there again
            assert await claimed_ids(store, HOUR, 10, lease) == ids


async def test_a_dead_row_holds_its_conversations_later_rows_back_and_no_other(
    emptied: Callable[[], Awaitable[Store]],
) -> None:
    """Behind a dead row nothing of its conversation is claimed, whatever its due time;
    another conversation's rows are; once requeued, the dead row leads its conversation."""
    for lease in (await emptied()).claim_modes:
        store = await emptied()
        x1 = await seed(store, _D, "x")
        y1, x2, y2 = [(await seed(store, _P, k)).id for k in ("y", "x", "y")]
        expected = {"leased": [y1], "locked": [y1, y2]}[mode_name(lease)]
        assert await claimed_ids(store, HOUR, 10, lease) == expected
        transition = x1.requeue(T0 + 2 * HOUR)
        assert transition is not None
        assert await apply(store, [transition]) == 1
        # By now the lease on y1 has run out as well.
        expected = {"leased": [x1.id, y1], "locked": [x1.id, y1, x2, y2]}[mode_name(lease)]
        assert await claimed_ids(store, 3 * HOUR, 10, lease) == expected


async def test_a_row_waiting_for_its_retry_holds_its_conversation_back_until_then(
    emptied: Callable[[], Awaitable[Store]],
) -> None:
    """A pending row whose next retry is later is not claimed, nor are its conversation's
    later rows, while other conversations' rows are; at its retry time it is claimed."""
    for lease in (await emptied()).claim_modes:
        store = await emptied()
        x1 = await seed(store, _P, "x")
        failed = x1.record_publish_failure(PublishFailure("busy"), T0, RETRY)
        assert failed is not None
        assert await apply(store, [failed]) == 1
        x2, y1 = [(await seed(store, _P, k)).id for k in ("x", "y")]
        retry_in = x1.next_retry_at - T0
        assert retry_in > timedelta(0)
        assert await claimed_ids(store, retry_in - timedelta(microseconds=1), 10, lease) == [y1]
        # y1 is still leased from the claim before, or free again after a locked claim.
        expected = {"leased": [x1.id], "locked": [x1.id, x2, y1]}[mode_name(lease)]
        assert await claimed_ids(store, retry_in, 10, lease) == expected


async def test_published_and_consumed_rows_hold_nothing_back(
    emptied: Callable[[], Awaitable[Store]],
) -> None:
    """Rows already out (published, consumed) are not claimed and do not hold their
    conversation: the first pending row after them heads it."""
    for lease in (await emptied()).claim_modes:
        store = await emptied()
        await seed(store, _U, "x")
        await seed(store, _C, "x")
        x3, x4 = [(await seed(store, _P, "x")).id for _ in range(2)]
        expected = {"leased": [x3], "locked": [x3, x4]}[mode_name(lease)]
        assert await claimed_ids(store, HOUR, 10, lease) == expected


async def test_a_row_of_another_event_type_is_claimed_like_a_chat_row(
    emptied: Callable[[], Awaitable[Store]],
) -> None:
    """Claims take rows of every type: whether the relay knows the type is the relay's
    business (it sends an unknown one dead at once), not the claim's."""
    for lease in (await emptied()).claim_modes:
        store = await emptied()
        x1 = (await add(store, new_message("x", T0, biz_type="other_event"))).id
        y1 = (await seed(store, _P, "y")).id
        assert await claimed_ids(store, HOUR, 10, lease) == [x1, y1]


async def test_a_row_of_another_event_type_keeps_its_place_in_its_key_order(
    emptied: Callable[[], Awaitable[Store]],
) -> None:
    """Types sharing a key share one recording order: the chat row after another type's
    row of its key is claimed after it (in the same run), never before it."""
    for lease in (await emptied()).claim_modes:
        store = await emptied()
        x1 = (await add(store, new_message("x", T0, biz_type="other_event"))).id
        x2 = (await seed(store, _P, "x")).id
        y1 = (await seed(store, _P, "y")).id
        expected = {"leased": [x1, y1], "locked": [x1, x2, y1]}[mode_name(lease)]
        assert await claimed_ids(store, HOUR, 10, lease) == expected


async def test_a_lease_hides_its_rows_and_holds_their_conversations_until_it_ends(
    store: Store,
) -> None:
    """A leased head is due again only when the lease ends; meanwhile its conversation's
    later rows wait, and the claimed row carries its new due time."""
    x1 = (await seed(store, _P, "x")).id
    await seed(store, _P, "x")
    [claimed] = await claim(store, T0, 10, LEASE)
    assert (claimed.id, claimed.next_retry_at) == (x1, T0 + LEASE)
    assert (await get(store, x1)).next_retry_at == T0 + LEASE
    assert await claimed_ids(store, LEASE - timedelta(microseconds=1), 10, LEASE) == []
    assert await claimed_ids(store, LEASE, 10, LEASE) == [x1]


async def test_settling_a_claim_writes_its_outcomes_guarded_and_leaves_the_rest_pending(
    emptied: Callable[[], Awaitable[Store]],
) -> None:
    """settle writes each outcome under its guard and says how many rows changed; a claimed
    row given no outcome stays pending."""
    for lease in (await emptied()).claim_modes:
        store = await emptied()
        for key in ("x", "y", "z"):
            await seed(store, _P, key)
        async with store.claims(lease).claim(T0 + HOUR, 10) as batch:
            x1, y1, z1 = batch.messages
            outcomes = [
                x1.mark_published(T0 + HOUR),
                y1.record_publish_failure(PublishFailure.fatal("too big"), T0 + HOUR, RETRY),
            ]
            stale = raw_transition(OutboxEvent.REQUEUED, z1.id)
            changed = await batch.settle([t for t in outcomes if t is not None] + [stale])
        assert changed == 2, mode_name(lease)
        assert [(await get(store, m.id)).status for m in (x1, y1, z1)] == [_U, _D, _P]
        assert await get(store, x1.id) == x1


# The fake against a database, on random operations


@pytest.mark.parametrize("contract_backend", CONTRACT_BACKENDS[1:], indirect=True)
@settings(max_examples=40, deadline=None)
@given(steps=operations)
async def test_the_fake_and_a_database_answer_alike_after_any_sequence_of_operations(
    contract_backend: tuple[str, AsyncEngine | None], steps: list[Operation]
) -> None:
    """Adds, guarded transitions (the entity's, and stray ones its guard must stop), claims
    in each of the database's modes and purges, in any order at any times, leave the fake
    and the database with the same rows, stats, held counts, dead rows, stale published
    rows and first messages."""
    twins = Twins(await empty_store("memory", None), await empty_store(*contract_backend))
    for step in steps:
        await twins.run(step)
