"""Alembic environment: runs on the connection `db.engine.migrate` hands over."""

from alembic import context

from gapless.db.tables import metadata

connection = context.config.attributes.get("connection")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
