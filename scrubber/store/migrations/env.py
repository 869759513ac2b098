"""Alembic environment: always run programmatically by Store.migrate()
(its ``Schema`` names the version table)."""

from __future__ import annotations

from alembic import context

from scrubber.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table=context.config.attributes["version_table"],
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
