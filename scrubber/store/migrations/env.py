"""Alembic environment: always run programmatically by Store.migrate()
(its ``Schema`` names the version table)."""

from __future__ import annotations

from scrubber.store.models import Base
from scrubber.store.store import run_migrations

run_migrations(Base.metadata)
