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
    and_,
    any_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from chat_outbox.adapters.sql.rows import message_columns
from chat_outbox.adapters.sql.tables import outbox_messages as t
from chat_outbox.domain import HOLDING_STATUSES, OutboxStatus

INSERT_MESSAGE = insert(t)

CLAIM_PLAN = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
    " set_config('enable_sort', 'off', true),"
    " set_config('enable_hashjoin', 'off', true)"
)
"""PostgreSQL, before a claim in the same transaction: a claim must walk the pending id
index to its limit, whatever the statistics say. Analysed while empty (a new deployment,
a truncated table), they make the planner expect one pending row, so it would read and
sort the whole backlog (or hash-join a lease's picks against it), or keep a generic plan
made for an empty table. A custom plan sized to the table as it is, with no sort and no
hash join, is always the index walk."""


def constant(value: str) -> ColumnElement[Any]:
    """A fixed string inlined in the SQL: no per-execution rendering, and a cached generic
    plan still sees it (a bound status could lose the index)."""
    assert "'" not in value, "constants are the domain's own words"
    return literal_column(f"'{value}'")


def is_one_of(column: ColumnElement[Any], values: Iterable[str]) -> ColumnElement[bool]:
    return column.in_([constant(value) for value in sorted(values)])


_HOLDING = tuple(status.value for status in HOLDING_STATUSES)


def _heads(table: FromClause) -> Select[Any]:
    """Due pending rows that head their conversation, oldest first. Heads only: another
    relay's in-flight head is still pending in every committed snapshot, so its successor
    is never a head, and SKIP LOCKED cannot reorder a conversation. Parameters: now, limit.
    Rows come back as adapters.sql.rows maps them."""
    earlier = t.alias("earlier")
    held_back = exists().where(
        earlier.c.message_key == table.c.message_key,
        is_one_of(earlier.c.status, _HOLDING),
        earlier.c.id < table.c.id,
    )
    return (
        select(*message_columns(table))
        .where(
            table.c.status == constant(OutboxStatus.PENDING.value),
            table.c.next_retry_at <= bindparam("now", type_=t.c.next_retry_at.type),
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
    .returning(*message_columns(t))
    for dialect, heads in (
        ("postgresql", _heads(_candidate).with_for_update(skip_locked=True, of=_candidate)),
        ("sqlite", _heads(_candidate)),
    )
}
"""Claim by lease. Parameters: now, limit, lease_until."""
LEASE_IDS = update(t).where(t.c.id.in_(bindparam("ids", expanding=True))).values(_lease)
"""MariaDB's lease, after LOCK_HEADS (it cannot UPDATE ... RETURNING)."""
RELEASE_LEASE = (
    update(t)
    .where(
        t.c.id.in_(bindparam("ids", expanding=True)),
        t.c.status == constant(OutboxStatus.PENDING.value),
        t.c.next_retry_at == bindparam("lease_until", type_=t.c.next_retry_at.type),
    )
    .values(next_retry_at=bindparam("now", type_=t.c.next_retry_at.type))
)
"""End a lease early: the rows are due again. Parameters: ids, lease_until, now."""


def _runs() -> Select[Any]:
    """Due pending rows, oldest first, locked, except rows behind a dead or not yet due row
    of their conversation; each with `previous`, the id of its conversation's latest
    earlier pending or dead row. A row whose previous row is in the claim extends its
    conversation's run; one behind another relay's row (skipped as locked) does not.
    Parameters: now, limit. Rows come back as adapters.sql.rows maps them, `previous`
    last. (max, not count: a backward index scan that stops at the first live entry.)"""
    earlier = t.alias("earlier")
    now = bindparam("now", type_=t.c.next_retry_at.type)
    waiting = exists().where(
        earlier.c.message_key == t.c.message_key,
        is_one_of(earlier.c.status, _HOLDING),
        earlier.c.id < t.c.id,
        or_(
            earlier.c.status == constant(OutboxStatus.DEAD.value),
            and_(
                earlier.c.status == constant(OutboxStatus.PENDING.value),
                earlier.c.next_retry_at > now,
            ),
        ),
    )
    before = t.alias("before")
    previous = (
        select(func.max(before.c.id))
        .where(
            before.c.message_key == t.c.message_key,
            is_one_of(before.c.status, _HOLDING),
            before.c.id < t.c.id,
        )
        .scalar_subquery()
    )
    return (
        select(*message_columns(t), previous.label("previous"))
        .where(
            t.c.status == constant(OutboxStatus.PENDING.value),
            t.c.next_retry_at <= now,
            ~waiting,
        )
        .order_by(t.c.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True, of=t)
    )


LOCK_RUNS = _runs()
"""Claim runs by row lock (PostgreSQL, MariaDB). Parameters: now, limit."""


@cache
def lock_runs_of_shard(dialect: str) -> Select[Any]:
    """LOCK_RUNS over one shard of the conversations: those whose key hashes to
    `shard_index` modulo `shard_count` (extra parameters). Every relay on one database uses
    the same hash, so the shards never overlap."""
    count = bindparam("shard_count", type_=Integer)
    index = bindparam("shard_index", type_=Integer)
    if dialect == "postgresql":
        hashed = func.hashtext(t.c.message_key).op("&")(0x7FFFFFFF) % count
        # int4eq(), not `=`: the planner guesses that `expression = value` keeps 0.5% of the
        # rows, and would read and sort the whole backlog rather than walk the id index; a
        # boolean function keeps a third.
        return LOCK_RUNS.where(func.int4eq(hashed, index))
    # MariaDB, MySQL
    return LOCK_RUNS.where(func.crc32(t.c.message_key) % count == index)


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
