"""Exact identifiers on MariaDB and MySQL: a NO PAD binary collation for every table.

`utf8mb4_bin` is a PAD SPACE collation, which compares "c1 " equal to "c1": a history read
or `dead requeue --conversation` for one conversation took the other's rows too, and an
event id or message key with a trailing space matched its shorter twin. A NO PAD binary
collation compares the bytes and nothing else, as PostgreSQL and SQLite do: MariaDB
(10.2 and later) has `utf8mb4_nopad_bin`, MySQL 8 `utf8mb4_0900_bin`. Converting rebuilds
each table (a copy, which takes a while on a large outbox) and cannot collide: the new
collation tells apart more values than the old one, never fewer.

Revision ID: 0009
Revises: 0008
"""

from alembic import op
from sqlalchemy import Connection

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("agent_outbox_messages", "chat_history_messages", "chat_outbox_relays")
MARIADB_NO_PAD = "utf8mb4_nopad_bin"
MYSQL_NO_PAD = "utf8mb4_0900_bin"
PAD_SPACE = "utf8mb4_bin"


def no_pad_collation(connection: Connection) -> str:
    """The server's NO PAD binary collation for utf8mb4, or RuntimeError if it has none."""
    dialect = connection.dialect
    version = tuple(getattr(dialect, "server_version_info", None) or ())
    if getattr(dialect, "is_mariadb", False):
        if version < (10, 2):
            raise RuntimeError("chat-outbox needs MariaDB 10.2 or later (utf8mb4_nopad_bin)")
        return MARIADB_NO_PAD
    if version < (8, 0):
        raise RuntimeError("chat-outbox needs MySQL 8.0 or later (utf8mb4_0900_bin)")
    return MYSQL_NO_PAD


def convert(collation: str) -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4 COLLATE {collation}")


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name in ("mysql", "mariadb"):
        convert(no_pad_collation(connection))


def downgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        convert(PAD_SPACE)
