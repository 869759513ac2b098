"""Alembic environment of the responder database: run by Store.migrate()
with the responder's ``Schema`` (which names the version table)."""

from __future__ import annotations

from scrubber.responder.models import ResponderBase
from scrubber.store.store import run_migrations

run_migrations(ResponderBase.metadata)
