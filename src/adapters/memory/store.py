"""An in-memory database: committed state in a store, a private copy per unit of work."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

import attrs

from chat_outbox.adapters.memory.owners import InMemoryConversationOwners
from chat_outbox.application.errors import DuplicateEvent
from chat_outbox.application.ports import (
    ChatHistoryRepository,
    DeadSelector,
    NewOutboxMessage,
    OutboxRepository,
    OutboxStats,
    RelayRoster,
    UnitOfWork,
)
from chat_outbox.domain import (
    BIZ_TYPE_CHAT_HISTORY,
    HistoryEntry,
    OutboxMessage,
    OutboxStatus,
    Transition,
    apply_to,
)
from chat_outbox.domain.envelope import Provenance
from chat_outbox.domain.journal import JournalEntry, is_journalled, journal_entry


@attrs.define
class InMemoryStore:
    """What has been committed. Tests read `outbox` and `history` directly."""

    outbox: dict[int, OutboxMessage] = attrs.field(factory=dict)
    history: dict[str, HistoryEntry] = attrs.field(factory=dict)
    relays: dict[str, datetime] = attrs.field(factory=dict)
    """Live relays: member id -> alive until."""
    owners: dict[str, int] = attrs.field(factory=dict)
    """Conversation id -> its owner's user id."""
    journal: list[JournalEntry] = attrs.field(factory=list)
    """The outbox journal (domain.journal), oldest line first."""
    commits: int = 0
    ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))


@attrs.define
class InMemoryOutboxRepository(OutboxRepository):
    rows: dict[int, OutboxMessage]
    ids: itertools.count[int]
    journal: list[JournalEntry] = attrs.field(factory=list)

    async def add(self, message: NewOutboxMessage) -> OutboxMessage:
        if await self.by_event_id(message.event_id) is not None:
            raise DuplicateEvent(message.event_id)
        row = message.recorded_as(next(self.ids))
        self.rows[row.id] = row
        return attrs.evolve(row)

    async def apply(self, transitions: Sequence[Transition]) -> int:
        changed = 0
        for transition in transitions:
            row = self.rows.get(transition.outbox_id)
            if row is not None and row.status in transition.guard:
                apply_to(row, transition)
                if is_journalled(transition):
                    self._journal(journal_entry(transition, row.retry_count))
                changed += 1
        return changed

    def _journal(self, entry: JournalEntry) -> None:
        """A transition written again (a settle retried after a lost commit) adds no line."""
        if entry not in self.journal:
            self.journal.append(entry)

    async def by_event_id(self, event_id: str) -> OutboxMessage | None:
        found = [row for row in self.rows.values() if row.event_id == event_id]
        return attrs.evolve(found[0]) if found else None

    async def first_of(self, conversation_id: str) -> OutboxMessage | None:
        chats = [
            row
            for row in self.rows.values()
            if row.message_key == conversation_id and row.biz_type == BIZ_TYPE_CHAT_HISTORY
        ]
        return attrs.evolve(min(chats, key=lambda row: row.id)) if chats else None

    async def get(self, outbox_id: int) -> OutboxMessage | None:
        row = self.rows.get(outbox_id)
        return None if row is None else attrs.evolve(row)

    async def provenances(self, outbox_ids: Sequence[int]) -> dict[int, Provenance]:
        return {i: Provenance.of_row(self.rows[i]) for i in outbox_ids if i in self.rows}

    async def dead(
        self, selector: DeadSelector, limit: int, after_id: int = 0
    ) -> list[OutboxMessage]:
        return [
            attrs.evolve(r)
            for r in sorted(self.rows.values(), key=lambda r: r.id)
            if r.status is OutboxStatus.DEAD and r.id > after_id and selector.matches(r)
        ][:limit]

    async def newest_id(self) -> int:
        return max(self.rows, default=0)

    async def held_behind_dead(self, conversation_ids: Sequence[str]) -> dict[str, int]:
        held = self._held_rows()
        return {c: sum(1 for r in held if r.message_key == c) for c in conversation_ids}

    def _held_rows(self) -> list[OutboxMessage]:
        first_dead: dict[str, int] = {}
        for row in sorted(self.rows.values(), key=lambda r: r.id):
            if row.status is OutboxStatus.DEAD:
                first_dead.setdefault(row.message_key, row.id)
        return [
            r
            for r in self.rows.values()
            if r.status is OutboxStatus.PENDING and first_dead.get(r.message_key, r.id) < r.id
        ]

    async def published_before(self, cutoff: datetime, limit: int) -> list[int]:
        return sorted(
            r.id
            for r in self.rows.values()
            if r.status is OutboxStatus.PUBLISHED
            and r.published_at is not None
            and r.published_at < cutoff
        )[:limit]

    async def purge_consumed(self, consumed_before: datetime, limit: int) -> int:
        doomed = sorted(
            r.id
            for r in self.rows.values()
            if r.status is OutboxStatus.CONSUMED
            and r.consumed_at is not None
            and r.consumed_at < consumed_before
        )[:limit]
        for outbox_id in doomed:
            del self.rows[outbox_id]
        self.journal[:] = [entry for entry in self.journal if entry.outbox_id not in doomed]
        return len(doomed)

    async def stats(self) -> OutboxStats:
        counts = {status: 0 for status in OutboxStatus}
        by_type: dict[str, dict[OutboxStatus, int]] = {}
        for row in self.rows.values():
            counts[row.status] += 1
            by_type.setdefault(row.biz_type, {s: 0 for s in OutboxStatus})[row.status] += 1
        return OutboxStats(
            by_type=by_type,
            counts=counts,
            oldest_pending_at=min(
                (r.created_at for r in self.rows.values() if r.status is OutboxStatus.PENDING),
                default=None,
            ),
            oldest_published_at=min(
                (
                    r.published_at
                    for r in self.rows.values()
                    if r.status is OutboxStatus.PUBLISHED and r.published_at is not None
                ),
                default=None,
            ),
            held=len(self._held_rows()),
        )


@attrs.define
class InMemoryChatHistoryRepository(ChatHistoryRepository):
    entries: dict[str, HistoryEntry]

    async def add_many(self, entries: Sequence[HistoryEntry]) -> int:
        inserted = 0
        for entry in entries:
            if entry.event_id not in self.entries:
                self.entries[entry.event_id] = entry
                inserted += 1
        return inserted

    async def by_event_ids(self, event_ids: Sequence[str]) -> dict[str, HistoryEntry]:
        return {i: self.entries[i] for i in event_ids if i in self.entries}

    async def for_conversation(
        self, conversation_id: str, limit: int, after_outbox_id: int = 0
    ) -> list[HistoryEntry]:
        found = [
            e
            for e in self.entries.values()
            if e.conversation_id == conversation_id and e.outbox_id > after_outbox_id
        ]
        return sorted(found, key=lambda e: e.outbox_id)[:limit]


@attrs.define
class InMemoryRelayRoster(RelayRoster):
    members: dict[str, datetime]

    async def beat(self, member: str, now: datetime, alive_until: datetime) -> list[str]:
        self.members[member] = alive_until
        for gone in [m for m, until in self.members.items() if until <= now]:
            del self.members[gone]
        return sorted(self.members)

    async def leave(self, member: str) -> None:
        self.members.pop(member, None)


@attrs.define
class InMemoryUnitOfWork(UnitOfWork):
    """Works on copies of the store's rows; commit() publishes them, anything else discards.
    Commits replace the store wholesale (last writer wins), so overlapping units of work are
    not modelled: race tests run on the real databases."""

    store: InMemoryStore
    committed: bool = False
    outbox: InMemoryOutboxRepository = attrs.field(init=False)
    history: InMemoryChatHistoryRepository = attrs.field(init=False)
    relays: InMemoryRelayRoster = attrs.field(init=False)
    owners: InMemoryConversationOwners = attrs.field(init=False)

    async def __aenter__(self) -> Self:
        rows = {key: attrs.evolve(row) for key, row in self.store.outbox.items()}
        self.outbox = InMemoryOutboxRepository(rows, self.store.ids, list(self.store.journal))
        self.history = InMemoryChatHistoryRepository(dict(self.store.history))
        self.relays = InMemoryRelayRoster(dict(self.store.relays))
        self.owners = InMemoryConversationOwners(dict(self.store.owners))
        self.committed = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Nothing to undo: uncommitted copies are simply dropped."""

    async def commit(self) -> None:
        self.store.outbox = self.outbox.rows
        self.store.journal = self.outbox.journal
        self.store.history = self.history.entries
        self.store.relays = self.relays.members
        self.store.owners = self.owners.owners
        self.store.commits += 1
        self.committed = True
