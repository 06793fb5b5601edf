"""Alembic environment: runs on the connection that adapters.sql.migrate hands in."""

from alembic import context

from chat_outbox.adapters.sql.migrate import VERSION_TABLE
from chat_outbox.adapters.sql.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations with `chat-outbox migrate` or chat_outbox.adapters.sql.run_migrations, "
        "not the alembic CLI"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    # chat-outbox's own table, so a host application's `alembic_version` is never touched.
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()
