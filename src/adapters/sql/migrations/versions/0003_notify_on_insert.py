"""PostgreSQL: NOTIFY chat_outbox_pending after each statement that inserts outbox rows.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION chat_outbox_notify_pending() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('chat_outbox_pending', '');
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER agent_outbox_notify_pending AFTER INSERT ON agent_outbox_messages "
        "FOR EACH STATEMENT EXECUTE FUNCTION chat_outbox_notify_pending()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS agent_outbox_notify_pending ON agent_outbox_messages")
    op.execute("DROP FUNCTION IF EXISTS chat_outbox_notify_pending()")
