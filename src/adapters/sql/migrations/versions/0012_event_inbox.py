"""The event inbox: the event id of each event a host handler has handled, written in the
handler's own transaction, so a redelivered event is never handled twice; purged with its
outbox row. Chat messages keep their exactly-once through chat history's unique event id.

Revision ID: 0012
Revises: 0011
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Connection
from sqlalchemy.dialects import mysql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLE = "chat_outbox_inbox"
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def mysql_options(connection: Connection) -> dict[str, Any]:
    """The outbox table's charset and collation, so event ids compare alike."""
    query = sa.text(
        "SELECT character_set_name, collation_name FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND table_name = 'agent_outbox_messages'"
        " AND column_name = 'event_id'"
    )
    charset, collation = connection.execute(query).one()
    return {"mysql_charset": charset, "mysql_collate": collation, "mysql_engine": "InnoDB"}


def upgrade() -> None:
    connection = op.get_bind()
    options = mysql_options(connection) if connection.dialect.name in ("mysql", "mariadb") else {}
    op.create_table(
        TABLE,
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("handled_at", TIMESTAMP, nullable=False),
        **options,
    )
    op.create_index("idx_inbox_outbox_id", TABLE, ["outbox_id"])


def downgrade() -> None:
    op.drop_table(TABLE)
