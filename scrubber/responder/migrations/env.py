"""Alembic environment of the responder database: run by Store.migrate()
with the responder's ``Schema`` (which names the version table)."""

from __future__ import annotations

from alembic import context

from scrubber.responder.models import ResponderBase

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table=context.config.attributes["version_table"],
    target_metadata=ResponderBase.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
