"""PostgreSQL's shortcut for the consumer's usual batch: the history insert and the consumed
mark in one statement, run on its own (autocommit), so a batch costs one round trip where a
unit of work costs four (BEGIN, insert, update, COMMIT)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.sql.engine import is_transient, unavailable
from chat_outbox.adapters.sql.history import history_columns, naive_utc
from chat_outbox.adapters.sql.tables import chat_history, outbox_messages
from chat_outbox.application.ports import FreshHistory
from chat_outbox.domain import (
    BIZ_TYPE_CHAT_HISTORY,
    HistoryEntry,
    OutboxEvent,
    OutboxStatus,
    statuses_changed_by,
)
from chat_outbox.domain.envelope import PROVENANCE_COLUMNS

_GUARD = ", ".join(f"'{s.value}'" for s in sorted(statuses_changed_by(OutboxEvent.CONSUMED)))
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
        -- fall to the unit of work, which tells a redelivery from a forgery. A lateral
        -- lookup of at most one row, not a join: the join's estimate (a row or two) sent
        -- the update below down a slower plan than its walk of the primary key
        CROSS JOIN LATERAL (
            SELECT 1 FROM {outbox_messages.name} AS source WHERE {_VOUCHED} LIMIT 1
        ) AS vouched
        ON CONFLICT (event_id) DO NOTHING
        RETURNING outbox_id
    ), consumed AS (
        UPDATE {outbox_messages.name}
        SET status = '{OutboxStatus.CONSUMED.value}', consumed_at = CAST(:at AS TIMESTAMP),
            updated_at = CAST(:at AS TIMESTAMP)
        -- = ANY lets the primary key be walked in id order, the lock order consumers keep
        -- (should the planner pick otherwise, a deadlock is retried as a transient error)
        WHERE id = ANY(CAST(:outbox_ids AS BIGINT[])) AND status IN ({_GUARD})
            AND id IN (SELECT outbox_id FROM added)
    )
    SELECT count(*) FROM added
    """
)


class SqlFreshHistory(FreshHistory):
    def __init__(self, engine: AsyncEngine) -> None:
        assert engine.dialect.name == "postgresql", "one statement needs PostgreSQL's CTEs"
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def add_consumed(self, entries: Sequence[HistoryEntry], at: datetime) -> int:
        if not entries:
            return 0
        values = {
            **history_columns(entries, datetime.now(UTC)),
            "at": naive_utc(at),
            "biz_type": BIZ_TYPE_CHAT_HISTORY,
        }
        try:
            async with self._engine.connect() as connection:
                return int((await connection.execute(ADD_CONSUMED, values)).scalar_one())
        except Exception as error:
            if is_transient(error):
                raise unavailable(error) from error
            raise


def fresh_history(engine: AsyncEngine) -> SqlFreshHistory | None:
    """The shortcut where the database has it (PostgreSQL), else None."""
    return SqlFreshHistory(engine) if engine.dialect.name == "postgresql" else None
