"""Live relays: each locking relay refreshes its row while it works, and the relays alive
share the conversations between them, so two relays do not claim from one conversation.

Revision ID: 0008
Revises: 0007
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}


def upgrade() -> None:
    op.create_table(
        "chat_outbox_relays",
        sa.Column("member_id", sa.String(64), primary_key=True),
        sa.Column("alive_until", TIMESTAMP, nullable=False),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("chat_outbox_relays")
