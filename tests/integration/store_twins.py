"""Two stores driven by one sequence of operations, compared after every step: the fake and
a database must end each step with the same rows, counts and answers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs
from hypothesis import strategies as st

from chat_outbox.adapters.clock import uuid4_event_id
from chat_outbox.application.ports import DeadSelector
from chat_outbox.domain import (
    IllegalTransition,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
    PublishFailure,
    Transition,
    consumed,
    requeued,
    swept,
)
from tests.integration.stores import RETRY, T0, Store, add, apply, claim, new_message

CONVERSATIONS = ("c-0", "c-1", "c-2")
KINDS = ("add", "add", "ack", "fail", "fatal", "consume", "requeue", "sweep", "claim", "purge")

Operation = tuple[str, int, int]
"""(kind, a row's or conversation's index or a limit, seconds after T0)."""
operations = st.lists(
    # Coarse times, so that rows often meet a cutoff or a retry time exactly.
    st.tuples(st.sampled_from(KINDS), st.integers(0, 7), st.sampled_from((0, 60, 300, 900))),
    min_size=4,
    max_size=40,
)


def _decided(kind: str, row: OutboxMessage, at: datetime) -> Transition:
    """The entity's transition for `kind`, or, where the entity makes none (a no-op) or
    refuses, the transition as a late or stray write would send it: the guard must stop it."""
    entity = attrs.evolve(row)
    made: Transition | None
    try:
        made = {
            "ack": lambda: entity.mark_published(at),
            "fail": lambda: entity.record_publish_failure(PublishFailure("busy"), at, RETRY),
            "fatal": lambda: entity.record_publish_failure(PublishFailure.fatal("x"), at, RETRY),
            "consume": lambda: entity.mark_consumed(at),
            "requeue": lambda: entity.requeue(at),
            "sweep": lambda: entity.sweep(at),
        }[kind]()
    except IllegalTransition:
        made = None
    if made is not None:
        return made
    stray = {
        "ack": lambda: Transition(row.id, OutboxEvent.PUBLISH_ACKED, OutboxStatus.PUBLISHED, at),
        "fail": lambda: Transition(row.id, OutboxEvent.PUBLISH_FAILED, OutboxStatus.PENDING, at),
        "fatal": lambda: Transition(
            row.id, OutboxEvent.PUBLISH_FAILED_FATALLY, OutboxStatus.DEAD, at
        ),
        "consume": lambda: consumed(row.id, at),
        "requeue": lambda: requeued(row.id, at),
        "sweep": lambda: swept(row.id, at),
    }
    return stray[kind]()


@attrs.define
class Twins:
    """The same operations on `first` and `second`; ids differ (a database's sequence
    survives emptying), so rows are compared by their recording position."""

    first: Store
    second: Store
    ids: list[tuple[int, int]] = attrs.field(factory=list)
    """Per recorded message, its id in first and in second."""

    async def run(self, operation: Operation) -> None:
        kind, index, seconds = operation
        at = T0 + timedelta(seconds=seconds)
        if kind == "add":
            message = new_message(CONVERSATIONS[index % 3], at, event_id=uuid4_event_id())
            added = [await add(store, message) for store in (self.first, self.second)]
            self.ids.append((added[0].id, added[1].id))
        elif kind == "claim":
            modes = self.second.claim_modes
            lease = modes[index % len(modes)]
            claimed = [await claim(s, at, index // 2 + 1, lease) for s in (self.first, self.second)]
            assert self._positions(0, claimed[0]) == self._positions(1, claimed[1]), operation
        elif kind == "purge":
            purged = [await _purge(s, at, index + 1) for s in (self.first, self.second)]
            assert purged[0] == purged[1], operation
        elif self.ids:
            await self._transition(kind, self.ids[index % len(self.ids)], at)
        assert await self.snapshot(0) == await self.snapshot(1), operation

    async def _transition(self, kind: str, ids: tuple[int, int], at: datetime) -> None:
        async with self.first.open() as unit:
            row = await unit.outbox.get(ids[0])
        if row is None:  # purged: both sides said so in the last snapshot
            return
        transition = _decided(kind, row, at)
        changed = [
            await apply(store, [attrs.evolve(transition, outbox_id=outbox_id)])
            for store, outbox_id in zip((self.first, self.second), ids, strict=True)
        ]
        assert changed[0] == changed[1], (kind, transition)

    def _positions(self, side: int, messages: list[OutboxMessage]) -> list[int]:
        where = {ids[side]: position for position, ids in enumerate(self.ids)}
        return [where[message.id] for message in messages]

    async def snapshot(self, side: int) -> dict[str, Any]:
        """Everything the store answers, with ids as recording positions."""
        store = (self.first, self.second)[side]
        position = {ids[side]: n for n, ids in enumerate(self.ids)}
        async with store.open() as unit:
            rows = [await unit.outbox.get(ids[side]) for ids in self.ids]
            dead = await unit.outbox.dead(DeadSelector(), 100)
            stale = await unit.outbox.published_before(T0 + timedelta(seconds=450), 100)
            firsts = [await unit.outbox.first_of(c) for c in CONVERSATIONS]
            return {
                "rows": [row and attrs.evolve(row, id=position[row.id]) for row in rows],
                "stats": await unit.outbox.stats(),
                "held": await unit.outbox.held_behind_dead(CONVERSATIONS),
                "dead": [position[row.id] for row in dead],
                "published_before": [position[i] for i in stale],
                "first_of": [row and position[row.id] for row in firsts],
                "newest": position.get(await unit.outbox.newest_id()),
            }


async def _purge(store: Store, at: datetime, limit: int) -> int:
    async with store.open() as unit:
        purged = await unit.outbox.purge_consumed(at, limit)
        await unit.commit()
    return purged
