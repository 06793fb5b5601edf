"""The outbox journal: a line for each failed attempt (with its own error), death, requeue
and sweep of an outbox row, so the dashboard shows a message's journey attempt by attempt.
Rows recorded before this revision have no lines; nothing is backfilled.

Revision ID: 0011
Revises: 0010
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Connection
from sqlalchemy.dialects import mysql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLE = "chat_outbox_attempts"
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def mysql_options(connection: Connection) -> dict[str, Any]:
    """The outbox table's charset and collation, so the journal's text compares alike."""
    query = sa.text(
        "SELECT character_set_name, collation_name FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND table_name = 'agent_outbox_messages'"
        " AND column_name = 'message_key'"
    )
    charset, collation = connection.execute(query).one()
    return {"mysql_charset": charset, "mysql_collate": collation, "mysql_engine": "InnoDB"}


def upgrade() -> None:
    connection = op.get_bind()
    options = mysql_options(connection) if connection.dialect.name in ("mysql", "mariadb") else {}
    op.create_table(
        TABLE,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("happened_at", TIMESTAMP, nullable=False),
        sa.Column("next_retry_at", TIMESTAMP, nullable=True),
        **options,
    )
    op.create_index("idx_attempts_outbox_id", TABLE, ["outbox_id", "id"])


def downgrade() -> None:
    op.drop_table(TABLE)
