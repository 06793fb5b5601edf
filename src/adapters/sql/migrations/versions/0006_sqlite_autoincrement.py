"""SQLite: outbox ids are never reused. Without AUTOINCREMENT SQLite hands out max(id) + 1,
so purging the newest consumed rows would give their ids to new messages, which would then
sort before older ones in history and could be taken for a late redelivery's row.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # PostgreSQL sequences and InnoDB counters never go back; only SQLite needs the rebuild.
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "agent_outbox_messages", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("agent_outbox_messages", recreate="always"):
        pass
