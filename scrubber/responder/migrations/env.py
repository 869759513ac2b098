"""Alembic environment of the responder database: run by ResponderStore.migrate()."""

from __future__ import annotations

from alembic import context

from scrubber.responder.models import ResponderBase

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=ResponderBase.metadata,
    version_table="responder_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
