"""Outbox and chat-history tables.

Revision ID: 0001
Revises:
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the types in adapters.sql.tables: a migration must not change later.
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}


def upgrade() -> None:
    op.create_table(
        "agent_outbox_messages",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("biz_type", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("message_key", sa.String(128), nullable=False),
        sa.Column("payload", LONG_TEXT, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("max_retry", sa.Integer(), nullable=False),
        sa.Column("next_retry_at", TIMESTAMP, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("published_at", TIMESTAMP, nullable=True),
        sa.Column("consumed_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
        sa.CheckConstraint(
            "status IN ('pending', 'published', 'consumed', 'dead')", name="ck_outbox_status"
        ),
        sa.CheckConstraint("retry_count >= 0 AND retry_count <= max_retry", name="ck_outbox_retry"),
        **MYSQL,
    )
    op.create_index(
        "idx_outbox_status_next",
        "agent_outbox_messages",
        ["status", "next_retry_at", "biz_type"],
    )
    op.create_index("idx_outbox_key_id", "agent_outbox_messages", ["message_key", "id"])
    op.create_table(
        "chat_history_messages",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("conversation_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("message", LONG_TEXT, nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.Column("persisted_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("event_id", name="uq_history_event_id"),
        **MYSQL,
    )
    op.create_index(
        "idx_history_conversation", "chat_history_messages", ["conversation_id", "outbox_id"]
    )


def downgrade() -> None:
    op.drop_table("chat_history_messages")
    op.drop_table("agent_outbox_messages")
