"""The W3C traceparent a message was recorded under, so the consumer can continue its trace.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column with no default: a metadata-only change on all three databases.
    op.add_column("agent_outbox_messages", sa.Column("traceparent", sa.String(55), nullable=True))


def downgrade() -> None:
    # batch mode rebuilds the table on SQLite versions without DROP COLUMN.
    with op.batch_alter_table("agent_outbox_messages") as batch:
        batch.drop_column("traceparent")
