"""Partial indexes for the claim on PostgreSQL: the pending rows in id order, and a
conversation's pending and dead rows for the head check. With statistics taken while the
backlog was pending, PostgreSQL walked the primary key past every published row instead.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLE = "agent_outbox_messages"
INDEXES = {
    "idx_outbox_pending_id": (["id"], "status = 'pending'"),
    "idx_outbox_holding_key_id": (["message_key", "id"], "status IN ('dead', 'pending')"),
}


def upgrade() -> None:
    # MariaDB has none; SQLite's planner kept to the full indexes (tables.py).
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (columns, where) in INDEXES.items():
        op.create_index(name, TABLE, columns, postgresql_where=sa.text(where))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.drop_index(name, table_name=TABLE)
