"""Alembic environment: the caller (store.upgrade) hands over an open connection."""

from alembic import context

connection = context.config.attributes["connection"]
# batch mode: SQLite alters a table by copying it, which later migrations need
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
