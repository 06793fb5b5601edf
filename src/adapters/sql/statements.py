"""The hot-path statements, built once. Building a statement and its cache key cost more
CPU than a small batch's round trips, and a statement object memoises its cache key; the
values travel as bound parameters, and fixed strings are inlined, not bound."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    Integer,
    Select,
    Update,
    any_,
    bindparam,
    exists,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from adapters.sql.claimed import claimed_columns
from adapters.sql.tables import outbox_messages as t
from domain import BIZ_TYPE_CHAT_HISTORY, HOLDING_STATUSES, OutboxStatus

INSERT_MESSAGE = insert(t)


def constant(value: str) -> ColumnElement[Any]:
    """A fixed string inlined in the SQL: no per-execution rendering, and a cached generic
    plan still sees it (a bound status could lose the index)."""
    assert "'" not in value, "constants are the domain's own words"
    return literal_column(f"'{value}'")


def is_one_of(column: ColumnElement[Any], values: Iterable[str]) -> ColumnElement[bool]:
    return column.in_([constant(value) for value in sorted(values)])


def _heads(table: FromClause) -> Select[Any]:
    """Due pending rows that head their conversation, oldest first. Heads only: another
    relay's in-flight head is still pending in every committed snapshot, so its successor
    is never a head, and SKIP LOCKED cannot reorder a conversation. Parameters: now, limit.
    Rows come back as adapters.sql.claimed maps them."""
    earlier = t.alias("earlier")
    held_back = exists().where(
        earlier.c.message_key == table.c.message_key,
        is_one_of(earlier.c.status, (status.value for status in HOLDING_STATUSES)),
        earlier.c.id < table.c.id,
    )
    return (
        select(*claimed_columns(table))
        .where(
            table.c.status == constant(OutboxStatus.PENDING.value),
            table.c.next_retry_at <= bindparam("now", type_=t.c.next_retry_at.type),
            table.c.biz_type == constant(BIZ_TYPE_CHAT_HISTORY),
            ~held_back,
        )
        .order_by(table.c.id)
        .limit(bindparam("limit", type_=Integer))
    )


HEADS = _heads(t)
LOCK_HEADS = HEADS.with_for_update(skip_locked=True, of=t)
"""Claim by row lock (PostgreSQL, MariaDB). Parameters: now, limit."""
_candidate = t.alias("candidate")
_lease = {"next_retry_at": bindparam("lease_until", type_=t.c.next_retry_at.type)}
LEASE_HEADS = {
    # One statement: pick the heads and lease them (UPDATE ... RETURNING).
    dialect: update(t)
    .where(t.c.id.in_(heads.with_only_columns(_candidate.c.id)))
    .values(_lease)
    .returning(*claimed_columns(t))
    for dialect, heads in (
        ("postgresql", _heads(_candidate).with_for_update(skip_locked=True, of=_candidate)),
        ("sqlite", _heads(_candidate)),
    )
}
"""Claim by lease. Parameters: now, limit, lease_until."""
LEASE_IDS = update(t).where(t.c.id.in_(bindparam("ids", expanding=True))).values(_lease)
"""MariaDB's lease, after LOCK_HEADS (it cannot UPDATE ... RETURNING)."""


@cache
def outcome_update(dialect: str, guard: tuple[str, ...], columns: tuple[str, ...]) -> Update:
    """Set `columns` (parameters named v_<column>) on the rows in `ids` whose status is in
    `guard`. PostgreSQL binds the ids as one array: an IN list of 500 is re-rendered on
    every execution."""
    if dialect == "postgresql":
        among = t.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))
    else:
        among = t.c.id.in_(bindparam("ids", expanding=True))
    values = {column: bindparam(f"v_{column}", type_=t.c[column].type) for column in columns}
    return update(t).where(among, is_one_of(t.c.status, guard)).values(values)
