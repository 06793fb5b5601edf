"""Claims take conversation heads only: no claim lock, and an index for the head check.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("agent_outbox_claim_lock")
    op.drop_index("idx_outbox_key_status_next", table_name="agent_outbox_messages")
    op.create_index(
        "idx_outbox_key_status_id", "agent_outbox_messages", ["message_key", "status", "id"]
    )


def downgrade() -> None:
    op.drop_index("idx_outbox_key_status_id", table_name="agent_outbox_messages")
    op.create_index(
        "idx_outbox_key_status_next",
        "agent_outbox_messages",
        ["message_key", "status", "next_retry_at", "id"],
    )
    lock = op.create_table(
        "agent_outbox_claim_lock",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.bulk_insert(lock, [{"id": 1}])
