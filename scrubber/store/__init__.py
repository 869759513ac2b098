"""Persistence: one Store object owns the engine, sessions and migrations."""

from scrubber.store.store import Store

__all__ = ["Store"]
