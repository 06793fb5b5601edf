"""Conversation owners: one row per conversation naming the user it belongs to, claimed in
the record's own transaction from now on, and backfilled here from what was recorded: the
user of a conversation's first message (its lowest outbox id, in chat history or in the
outbox). A first message whose user cannot be read makes the owner 0, which no user is.

Revision ID: 0010
Revises: 0009
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Connection
from sqlalchemy.dialects import mysql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLE = "chat_outbox_conversation_owners"
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
NOBODY = 0


def user_of_payload(dialect: str) -> str:
    """The payload's user_id as a BIGINT, or NULL when it is not an integer."""
    if dialect == "postgresql":
        user = "(payload::json->>'user_id')"
        return f"CASE WHEN {user} ~ '^-?[0-9]{{1,18}}$' THEN {user}::bigint END"
    if dialect in ("mysql", "mariadb"):
        user = "JSON_VALUE(payload, '$.user_id')"
        return (
            f"CASE WHEN JSON_VALID(payload) THEN CASE WHEN {user} REGEXP '^-?[0-9]{{1,18}}$'"
            f" THEN CAST({user} AS SIGNED) END END"
        )
    return (
        "CASE WHEN json_valid(payload) THEN CASE WHEN json_type(payload, '$.user_id')"
        " = 'integer' THEN json_extract(payload, '$.user_id') END END"
    )


def backfill(dialect: str) -> str:
    # History first on a tie: the same message in both places has the same user anyway.
    return f"""
        INSERT INTO {TABLE} (conversation_id, user_id, created_at)
        SELECT conversation_id, COALESCE(user_id, {NOBODY}), created_at FROM (
            SELECT conversation_id, user_id, created_at, ROW_NUMBER() OVER (
                PARTITION BY conversation_id ORDER BY outbox_id, source
            ) AS position FROM (
                SELECT conversation_id, user_id, outbox_id, recorded_at AS created_at,
                       0 AS source
                FROM chat_history_messages
                UNION ALL
                SELECT message_key, {user_of_payload(dialect)}, id, created_at, 1
                FROM agent_outbox_messages WHERE biz_type = 'chat_history_persist'
            ) recorded
        ) ranked WHERE position = 1
    """


def mysql_options(connection: Connection) -> dict[str, Any]:
    """The charset and collation of outbox message keys, so conversation ids compare alike."""
    query = sa.text(
        "SELECT character_set_name, collation_name FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND table_name = 'agent_outbox_messages'"
        " AND column_name = 'message_key'"
    )
    charset, collation = connection.execute(query).one()
    return {"mysql_charset": charset, "mysql_collate": collation, "mysql_engine": "InnoDB"}


def upgrade() -> None:
    connection = op.get_bind()
    dialect = connection.dialect.name
    options = mysql_options(connection) if dialect in ("mysql", "mariadb") else {}
    op.create_table(
        TABLE,
        sa.Column("conversation_id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        **options,
    )
    op.execute(backfill(dialect))


def downgrade() -> None:
    op.drop_table(TABLE)
