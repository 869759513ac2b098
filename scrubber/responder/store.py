"""The registrant's local database: protected addresses and what scans learned.

A separate SQLite file (never an operator workspace), managed like the main
store: a ``Store`` (the same engine and single write path) given the
responder's own ``Schema``: Alembic migrations in ``responder/migrations``
and their own version table, so the two schemas can never be mixed up in
one file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from scrubber import scheme
from scrubber.errors import InputFileError, ResponderError, StoreError
from scrubber.private import private_dir, touch_private
from scrubber.responder.models import CachedDigest, Cursor, Protected
from scrubber.store import Schema, Store
from scrubber.store.types import utcnow

ENV_DB = "SCRUBBER_RESPONDER_DB"
VERSION_TABLE = "responder_alembic_version"
# The newest responder migration: compared with the database on open, so
# Alembic is loaded only when there is something to migrate (start-up time).
# tests/test_responder.py fails when it disagrees with the migrations.
SCHEMA_HEAD = "r0004"
SCHEMA = Schema("scrubber.responder", VERSION_TABLE, SCHEMA_HEAD)


def default_db_path() -> Path:
    """$SCRUBBER_RESPONDER_DB, else $XDG_DATA_HOME/scrubber/responder.db."""
    explicit = os.environ.get(ENV_DB)
    if explicit:
        return Path(explicit)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "scrubber" / "responder.db"


class ResponderStore(Store):
    """The responder database; created and migrated on first open."""

    def __init__(self, url: str) -> None:
        super().__init__(url, schema=SCHEMA)

    @classmethod
    def open(cls, path: Path) -> ResponderStore:
        try:
            private_dir(path.parent, tighten_existing=False)
        except OSError as exc:
            raise StoreError(f"cannot create {path.parent}: {exc.strerror}") from None
        store = cls(f"sqlite:///{path}")
        try:
            if not store.schema_is_current():
                store.migrate()
        except Exception:
            store.close()
            raise
        return store

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the scan lock: two scans of one database at once could send a
        ping round twice (both read it as owed before either records it)."""
        path = Path(f"{self.engine.url.database}.lock")
        touch_private(path)
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ResponderError(
                    f"another responder scan is using {self.engine.url.database}"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class AddResult:
    added: list[str]  # canonical forms newly protected
    known: list[str]  # canonical forms that were protected already
    rejected: list[tuple[str, str]]  # (masked input, reason)


def add_addresses(store: ResponderStore, addresses: Iterable[str]) -> AddResult:
    """Protect ``addresses`` (canonicalized; the original spelling is not kept)."""
    wanted: dict[str, None] = {}
    rejected: list[tuple[str, str]] = []
    for address in addresses:
        result = scheme.try_canonicalize(address)
        if isinstance(result, scheme.Reject):
            rejected.append((scheme.mask(address.strip()), result.value))
        else:
            wanted[result] = None
    now = utcnow()
    with store.write() as session:
        present = set(session.scalars(select(Protected.canonical)))
        added = [c for c in wanted if c not in present]
        session.add_all(Protected(canonical=c, added_at=now, recheck=True) for c in added)
    return AddResult(added, [c for c in wanted if c in present], rejected)


def read_address_file(path: Path) -> list[str]:
    """One address a line; blank lines and ``#`` comments are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise InputFileError(f"cannot read {path}: {reason}") from None
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def remove_addresses(store: ResponderStore, addresses: Iterable[str]) -> tuple[int, list[str]]:
    """Stop protecting ``addresses``; returns (removed, inputs not protected)."""
    canonical: dict[str, str] = {}
    for address in addresses:
        result = scheme.try_canonicalize(address)
        canonical[address] = result if isinstance(result, str) else address
    with store.write() as session:
        present = set(session.scalars(select(Protected.canonical)))
        gone = {c for c in canonical.values() if c in present}
        if gone:
            session.execute(delete(CachedDigest).where(CachedDigest.canonical.in_(gone)))
            session.execute(delete(Protected).where(Protected.canonical.in_(gone)))
    missing = [a for a, c in canonical.items() if c not in present]
    return len(gone), missing


def awaiting_recheck(store: ResponderStore) -> dict[str, datetime]:
    """canonical -> when it was added, for addresses whose earlier batches
    have not been looked through for them yet."""
    with store.read() as session:
        rows = session.execute(
            select(Protected.canonical, Protected.added_at).where(Protected.recheck)
        )
        return {canonical: added for canonical, added in rows}


def recheck_done(store: ResponderStore, canonicals: Iterable[str]) -> None:
    wanted = list(canonicals)
    with store.write() as session:
        session.execute(
            update(Protected).where(Protected.canonical.in_(wanted)).values(recheck=False)
        )


def list_protected(store: ResponderStore) -> list[str]:
    with store.read() as session:
        return list(session.scalars(select(Protected.canonical).order_by(Protected.canonical)))


def get_mark(store: ResponderStore, source: str) -> str | None:
    with store.read() as session:
        row = session.get(Cursor, source)
        return row.mark if row else None


def set_mark(store: ResponderStore, source: str, mark: str) -> None:
    with store.write() as session:
        row = session.get(Cursor, source)
        if row is None:
            session.add(Cursor(source=source, mark=mark, updated_at=utcnow()))
        else:
            row.mark, row.updated_at = mark, utcnow()


def params_key(params: scheme.Params) -> str:
    """The digest cache's key for the Argon2 costs (the tag length does not change H)."""
    return f"{params.t},{params.m},{params.p}"


def cached_digests(
    store: ResponderStore, salt: bytes, params: str, canonicals: Sequence[str]
) -> dict[str, bytes]:
    with store.read() as session:
        rows = session.execute(
            select(CachedDigest.canonical, CachedDigest.h).where(
                CachedDigest.salt == salt, CachedDigest.params == params
            )
        )
        wanted = set(canonicals)
        return {c: h for c, h in rows if c in wanted}


def add_digests(session: Session, salt: bytes, params: str, found: dict[str, bytes]) -> None:
    """Cache ``found`` (canonical -> Argon2 output) in the caller's transaction."""
    if not found:
        return
    present = set(session.scalars(select(Protected.canonical)))
    # An address removed while we hashed is not cached again.
    session.add_all(
        CachedDigest(salt=salt, params=params, canonical=c, h=h)
        for c, h in found.items()
        if c in present
    )
