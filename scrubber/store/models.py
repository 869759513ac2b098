"""Tables. Schema changes go through an Alembic migration in migrations/versions;
tests/test_store.py fails when these models and the migrations disagree."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, composite, mapped_column

from scrubber.scheme import Params, RespondTo
from scrubber.store.outcomes import ACCEPTED_ONLY
from scrubber.store.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Timestamp = UTCDateTime()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SaltEpoch(Base):
    """A salt with its Argon2 parameters; digests are cached per epoch."""

    __tablename__ = "salt_epochs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    t: Mapped[int]
    m: Mapped[int]
    p: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    ends_at: Mapped[datetime] = mapped_column(Timestamp)


class MailingList(Base):
    __tablename__ = "lists"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    last_import_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Address(Base):
    """One canonical address of the operator, shared by all its lists."""

    __tablename__ = "addresses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    canonical: Mapped[str] = mapped_column(String(254), unique=True)


class ListEntry(Base):
    """One address on one list, with the spelling the list had for it."""

    __tablename__ = "list_entries"
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"), primary_key=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id"), primary_key=True)
    # NULL when the list spells the address in its canonical form (most do):
    # the same text is not stored twice.
    original: Mapped[str | None] = mapped_column(Text)
    # Read only by list (the leading key column): on SQLite the primary key
    # is the table, one B-tree per imported address instead of three.
    __table_args__ = ({"sqlite_with_rowid": False},)


class ImportRun(Base):
    __tablename__ = "imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"), index=True)
    source: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime] = mapped_column(Timestamp)
    lines: Mapped[int]
    accepted: Mapped[int]
    added: Mapped[int]
    rejected: Mapped[int]
    rejects_path: Mapped[str | None] = mapped_column(Text)


class Suppression(Base):
    """The ledger: an address the operator must never mail again, permanent
    and across all lists, with how, why and when the request came in.

    ``channel`` is how it arrived (``dni-ping``, ``one-click``, ``mailto``,
    ``manual``, ``import:<source>``), ``reason`` why (scrubber.ledger.REASONS),
    ``origin`` who or what asked (the list, the ESP's own origin field, the
    operator's note). ``received_at`` is when the request was made,
    ``suppressed_at`` when it was committed. Evidence: ``batch_id`` and
    ``ping_id`` for a ping, ``request_id`` (the listener's request, the
    import's file and line), ``client`` (the peer address, masked) and
    ``evidence`` (the one-click token, the import batch).
    """

    __tablename__ = "suppressions"
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id"), primary_key=True)
    suppressed_at: Mapped[datetime] = mapped_column(Timestamp)
    channel: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id"))
    ping_id: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(200))
    client: Mapped[str | None] = mapped_column(String(64))
    evidence: Mapped[str | None] = mapped_column(Text)


class SuppressionLift(Base):
    """A manual suppression lifted (entered by mistake): what it was, and why it went."""

    __tablename__ = "suppression_lifts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id"), index=True)
    lifted_at: Mapped[datetime] = mapped_column(Timestamp)
    lift_reason: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    suppressed_at: Mapped[datetime] = mapped_column(Timestamp)


class CachedDigest(Base):
    """Argon2id output of one address in one salt epoch (the hash cache)."""

    __tablename__ = "digests"
    epoch_id: Mapped[int] = mapped_column(ForeignKey("salt_epochs.id"), primary_key=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id"), primary_key=True)
    h: Mapped[bytes] = mapped_column(LargeBinary(32))
    # The proof look-up (schema 0009): a proof is H[16:32] whatever the batch,
    # so the listener finds it here by epoch. Stored (not an expression index,
    # which SQLAlchemy cannot reflect on SQLite) and filled while hashing,
    # where one more index entry is nothing next to Argon2.
    proof: Mapped[bytes] = mapped_column(LargeBinary(16))
    __table_args__ = (Index("ix_digests_epoch_proof", "epoch_id", "proof"),)


class Batch(Base):
    __tablename__ = "batches"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    epoch_id: Mapped[int] = mapped_column(ForeignKey("salt_epochs.id"))
    salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    t: Mapped[int]
    m: Mapped[int]
    p: Mapped[int]
    tag_length: Mapped[int]
    token: Mapped[str] = mapped_column(String(64), unique=True)
    newsgroup: Mapped[str] = mapped_column(String(200))
    respond_http: Mapped[str] = mapped_column(Text)
    respond_smtp: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    key_public: Mapped[str] = mapped_column(String(64))
    count: Mapped[int]
    parts_total: Mapped[int]
    # One value each for what the columns above spell out (scheme.Params
    # validates once, whichever path builds the batch).
    params: Mapped[Params] = composite("t", "m", "p", "tag_length")
    respond: Mapped[RespondTo] = composite("respond_http", "respond_smtp")
    # Protocol 2 (docs/scheme.md): the nonce keying the published values, the
    # GCS parameters and the tag block's encoding; NULL for a v1 batch.
    protocol: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    nonce: Mapped[bytes | None] = mapped_column(LargeBinary(16))
    gcs_p: Mapped[int | None]
    gcs_m: Mapped[int | None] = mapped_column(BigInteger)  # M may reach 2**32 - 1
    encoding: Mapped[str | None] = mapped_column(String(16))
    # Addresses of the batch's lists left out because they were suppressed
    # (schema 0007; NULL for older batches): lists change, so it is kept.
    left_out_suppressed: Mapped[int | None] = mapped_column(Integer)


class BatchList(Base):
    """A list a batch was made of, with its size then (schema 0007; NULL before)."""

    __tablename__ = "batch_lists"
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"), primary_key=True)
    listed: Mapped[int | None] = mapped_column(Integer)  # addresses on the list
    left_out: Mapped[int | None] = mapped_column(Integer)  # of them, already suppressed


class ListExport(Base):
    """One export of a list: from ``started_at`` on, no suppressed address left
    with it (the ledger report's "sending stopped")."""

    __tablename__ = "list_exports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime] = mapped_column(Timestamp)
    count: Mapped[int]
    __table_args__ = (Index("ix_list_exports_list_id", "list_id", "started_at"),)


class BatchEntry(Base):
    """A batch's membership: each address it holds, with its published tag
    (v1) or value (v2).

    Since schema 0009 the proof is not stored here: it is H[16:32] of the
    epoch's cached digest (``digests``, indexed by epoch and proof), and a
    proof of this batch is one whose address is a member. The primary key
    is the table (SQLite WITHOUT ROWID), inserted in address order, so a
    re-batch grows one B-tree at its end.
    """

    __tablename__ = "batch_entries"
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id"), primary_key=True)
    tag: Mapped[bytes] = mapped_column(LargeBinary(16))
    __table_args__ = (
        Index("ix_batch_entries_batch_tag", "batch_id", "tag"),  # part ranges (batch post)
        {"sqlite_with_rowid": False},
    )


class BatchPart(Base):
    __tablename__ = "batch_parts"
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(250), unique=True)
    first_tag: Mapped[bytes] = mapped_column(LargeBinary(16))
    last_tag: Mapped[bytes] = mapped_column(LargeBinary(16))
    count: Mapped[int]
    size: Mapped[int]


class BatchPartPost(Base):
    """One part of a batch taken by one server (schema 0008): a batch is
    posted to several servers, each resumed on its own.

    ``server`` names the destination without credentials (the transport's
    ``server``: ``nntp://HOST:PORT``, ``nntps://HOST:PORT`` or ``spool:DIR``);
    the Message-ID is the part's own, the same on every server.
    """

    __tablename__ = "batch_part_posts"
    batch_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    server: Mapped[str] = mapped_column(Text, primary_key=True)
    posted_at: Mapped[datetime] = mapped_column(Timestamp)
    __table_args__ = (
        ForeignKeyConstraint(["batch_id", "part"], ["batch_parts.batch_id", "batch_parts.part"]),
    )


class Ping(Base):
    """One proof received by the listener, with its outcome.

    Since schema 0004 only accepted proofs are stored here (older databases
    keep their other rows); worthless proofs are counted in PingTally.
    """

    __tablename__ = "pings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id"), index=True)
    proof: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    outcome: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(8))
    peer: Mapped[str] = mapped_column(String(64))
    address_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id"))
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    committed_at: Mapped[datetime] = mapped_column(Timestamp)
    __table_args__ = (
        # At most one accepted ping per proof and batch, even with several
        # listeners on one PostgreSQL database.
        Index(
            "uq_pings_accepted",
            "batch_id",
            "proof",
            unique=True,
            sqlite_where=text(ACCEPTED_ONLY),
            postgresql_where=text(ACCEPTED_ONLY),
        ),
    )


class PingTally(Base):
    """Worthless proofs counted, not stored one row each: one row per batch,
    channel, client address and UTC minute (schema 0004)."""

    __tablename__ = "ping_tallies"
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    peer: Mapped[str] = mapped_column(String(64), primary_key=True)
    invalid: Mapped[int] = mapped_column(Integer)  # not in the batch's index
    duplicate: Mapped[int] = mapped_column(Integer)  # accepted before
