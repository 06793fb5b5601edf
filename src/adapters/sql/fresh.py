"""PostgreSQL's history writer: the consumer's usual batch, all new and vouched for, costs
one statement run on its own (autocommit), the history insert and the consumed mark in one
round trip where a unit of work costs four (BEGIN, insert, update, COMMIT)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import attrs
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.sql.engine import is_transient, unavailable
from chat_outbox.adapters.sql.history import history_columns
from chat_outbox.adapters.sql.tables import chat_history, outbox_messages
from chat_outbox.application.ports import HistoryWriter, Persisted, in_lock_order
from chat_outbox.domain import BIZ_TYPE_CHAT_HISTORY, Envelope, HistoryEntry, consumed
from chat_outbox.domain.envelope import PROVENANCE_COLUMNS

_MARK = consumed(0, datetime.fromtimestamp(0, UTC))
"""Its changes' fields and its guard are every consumed mark's; the values are bound."""
_SET = ", ".join(f"{column} = :v_{column}" for column in _MARK.changes())
_GUARD = ", ".join(f"'{status.value}'" for status in sorted(_MARK.guard))
# What each provenance field of an entry is in the statement (its type is chat history's).
_CLAIMED = {"id": "row.o", "event_id": "row.e", "message_key": "row.c", "biz_type": ":biz_type"}
assert tuple(_CLAIMED) == PROVENANCE_COLUMNS, "the check must cover the domain's provenance"
_VOUCHED = " AND ".join(f"source.{column} = {_CLAIMED[column]}" for column in PROVENANCE_COLUMNS)
ADD_CONSUMED = text(
    f"""
    WITH added AS (
        INSERT INTO {chat_history.name} (event_id, outbox_id, conversation_id, user_id, role,
            message, recorded_at, persisted_at)
        SELECT e, o, c, u, r, m, at, CAST(:persisted_at AS TIMESTAMP)
        FROM unnest(
            CAST(:event_ids AS VARCHAR[]), CAST(:outbox_ids AS BIGINT[]),
            CAST(:conversation_ids AS VARCHAR[]), CAST(:user_ids AS BIGINT[]),
            CAST(:roles AS VARCHAR[]), CAST(:messages AS TEXT[]),
            CAST(:recorded_ats AS TIMESTAMP[])
        ) AS row(e, o, c, u, r, m, at)
        -- only entries whose outbox row vouches for them (Provenance.mismatch); the others
        -- go on to the writer that tells a redelivery from a forgery. A lateral
        -- lookup of at most one row, not a join: the join's estimate (a row or two) sent
        -- the update below down a slower plan than its walk of the primary key
        CROSS JOIN LATERAL (
            SELECT 1 FROM {outbox_messages.name} AS source WHERE {_VOUCHED} LIMIT 1
        ) AS vouched
        ON CONFLICT (event_id) DO NOTHING
        RETURNING outbox_id
    ), consumed AS (
        UPDATE {outbox_messages.name}
        SET {_SET}
        -- = ANY lets the primary key be walked in id order, the lock order consumers keep
        -- (should the planner pick otherwise, a deadlock is retried as a transient error)
        WHERE id = ANY(CAST(:outbox_ids AS BIGINT[])) AND status IN ({_GUARD})
            AND id IN (SELECT outbox_id FROM added)
    )
    SELECT count(*) FROM added
    """
).bindparams(  # typed as their columns: the UTC columns' binds convert as everywhere else
    *(bindparam(f"v_{c}", type_=outbox_messages.c[c].type) for c in _MARK.changes())
)


class OneStatementHistoryWriter(HistoryWriter):
    """Tries a batch in one statement; a batch it cannot take whole (some event ids are in
    history already, or not vouched for) goes on to `rest`, which tells them apart."""

    def __init__(self, engine: AsyncEngine, rest: HistoryWriter) -> None:
        assert engine.dialect.name == "postgresql", "one statement needs PostgreSQL's CTEs"
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._rest = rest

    async def persist(self, envelopes: Sequence[Envelope], at: datetime) -> Persisted:
        ordered = in_lock_order(envelopes)
        added = await self._add_consumed([HistoryEntry.from_envelope(e) for e in ordered], at)
        if added == len(ordered):
            return Persisted(added)
        # The rows just inserted are consumed already, and the guard refuses them again.
        rest = await self._rest.persist(ordered, at)
        return attrs.evolve(rest, inserted=added + rest.inserted)

    async def _add_consumed(self, entries: Sequence[HistoryEntry], at: datetime) -> int:
        """Insert the entries whose event id is new and whose outbox row vouches for them, and
        mark the row of each one inserted consumed at `at`; how many were inserted."""
        if not entries:
            return 0
        values = {
            **history_columns(entries, datetime.now(UTC)),
            **{f"v_{column}": value for column, value in consumed(0, at).changes().items()},
            "biz_type": BIZ_TYPE_CHAT_HISTORY,
        }
        try:
            async with self._engine.connect() as connection:
                return int((await connection.execute(ADD_CONSUMED, values)).scalar_one())
        except Exception as error:
            if is_transient(error):
                raise unavailable(error) from error
            raise
