"""The schema as SQLAlchemy Core tables; migrations/ creates the same thing in each database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql

from chat_outbox.domain import DEFAULT_MAX_RETRY, HOLDING_STATUSES, OutboxStatus


def postgresql_partial_index(name: str, *columns: str, where: str) -> Index:
    """An index on the rows matching `where`, on PostgreSQL only. MariaDB has no partial
    indexes, and SQLite's planner, without statistics, sorted on idx_outbox_status_next
    instead of using them: both keep to the full ones."""
    index = Index(name, *columns, info={"dialects": ("postgresql",)}, postgresql_where=text(where))
    return index.ddl_if(dialect="postgresql")


PENDING_ONLY = f"status = '{OutboxStatus.PENDING.value}'"
HOLDING_ONLY = "status IN (" + ", ".join(sorted(f"'{s.value}'" for s in HOLDING_STATUSES)) + ")"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; stored naive UTC everywhere."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> object:  # type: ignore[override]
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# MariaDB's TEXT holds 64 KiB; a message may be 512 KiB or more.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only
# A NO PAD binary collation (migration 0009): utf8mb4_bin pads, so "c1 " equalled "c1".
# This is MariaDB's; on MySQL 8 the migration uses utf8mb4_0900_bin, the same comparison.
MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
    "mysql_engine": "InnoDB",
}

metadata = MetaData()

outbox_messages = Table(
    "agent_outbox_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("biz_type", String(64), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("message_key", String(128), nullable=False),
    Column("payload", LongText, nullable=False),
    Column("status", String(16), nullable=False),
    Column("retry_count", Integer, nullable=False, default=0),
    Column("max_retry", Integer, nullable=False, default=DEFAULT_MAX_RETRY),
    Column("next_retry_at", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("published_at", UtcDateTime, nullable=True),
    Column("consumed_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("traceparent", String(55), nullable=True),
    CheckConstraint(
        "status IN (" + ", ".join(f"'{s.value}'" for s in OutboxStatus) + ")",
        name="ck_outbox_status",
    ),
    CheckConstraint("retry_count >= 0 AND retry_count <= max_retry", name="ck_outbox_retry"),
    UniqueConstraint("event_id", name="uq_outbox_event_id"),
    Index("idx_outbox_status_next", "status", "next_retry_at", "biz_type"),
    # Claims scan pending rows in id order; the hold-back check probes a conversation's
    # earlier pending and dead rows.
    Index("idx_outbox_status_id", "status", "id"),
    Index("idx_outbox_key_status_id", "message_key", "status", "id"),
    # The same two, on just the rows they serve (migration 0007): a claim stays on them
    # even when the planner's statistics still count the drained backlog as pending.
    postgresql_partial_index("idx_outbox_pending_id", "id", where=PENDING_ONLY),
    postgresql_partial_index("idx_outbox_holding_key_id", "message_key", "id", where=HOLDING_ONLY),
    sqlite_autoincrement=True,  # never reuse a purged id (migration 0006)
    **MYSQL,
)

chat_history = Table(
    "chat_history_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("outbox_id", BigInteger, nullable=False),
    Column("conversation_id", String(128), nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("role", String(16), nullable=False),
    Column("message", LongText, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("persisted_at", UtcDateTime, nullable=False),
    UniqueConstraint("event_id", name="uq_history_event_id"),
    Index("idx_history_conversation", "conversation_id", "outbox_id"),
    **MYSQL,
)

# Live relays (migration 0008): each refreshes its row while it works, and the members
# alive share the conversations between them (application.relay.sharing).
relay_members = Table(
    "chat_outbox_relays",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("alive_until", UtcDateTime, nullable=False),
    **MYSQL,
)

# Who owns each conversation (migration 0010): the user it was first claimed for. The key
# is a conversation id, typed and collated as outbox message keys are.
conversation_owners = Table(
    "chat_outbox_conversation_owners",
    metadata,
    Column("conversation_id", String(128), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    **MYSQL,
)

# The outbox journal (migration 0011): a line for each failed attempt, death, requeue and
# sweep of a row (domain.journal), written with the row's own update and purged with it.
outbox_attempts = Table(
    "chat_outbox_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("outbox_id", BigInteger, nullable=False),
    Column("event", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("happened_at", UtcDateTime, nullable=False),
    Column("next_retry_at", UtcDateTime, nullable=True),
    Index("idx_attempts_outbox_id", "outbox_id", "id"),
    **MYSQL,
)

# The event inbox (migration 0012): each handled event's id, inserted in its handler's
# transaction, so a redelivery is recognised and never handled twice.
event_inbox = Table(
    "chat_outbox_inbox",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("outbox_id", BigInteger, nullable=False),
    Column("handled_at", UtcDateTime, nullable=False),
    Index("idx_inbox_outbox_id", "outbox_id"),
    **MYSQL,
)
