"""Persistence: one Store object owns the engine, sessions and migrations."""

from scrubber.store.store import MAIN_SCHEMA, Schema, Store

__all__ = ["MAIN_SCHEMA", "Schema", "Store"]
