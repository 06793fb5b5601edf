"""Per-conversation order: serialised claims and indexes for the hold-back check.

Revision ID: 0002
Revises: 0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    lock = op.create_table(
        "agent_outbox_claim_lock",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        **MYSQL,
    )
    op.bulk_insert(lock, [{"id": 1}])
    op.create_index("idx_outbox_status_id", "agent_outbox_messages", ["status", "id"])
    op.create_index(
        "idx_outbox_key_status_next",
        "agent_outbox_messages",
        ["message_key", "status", "next_retry_at", "id"],
    )
    op.drop_index("idx_outbox_key_id", table_name="agent_outbox_messages")


def downgrade() -> None:
    op.create_index("idx_outbox_key_id", "agent_outbox_messages", ["message_key", "id"])
    op.drop_index("idx_outbox_key_status_next", table_name="agent_outbox_messages")
    op.drop_index("idx_outbox_status_id", table_name="agent_outbox_messages")
    op.drop_table("agent_outbox_claim_lock")
