"""The responder's own tables, in its own database (never an operator workspace).

Nothing here leaves the machine except proofs. Digests are cached per
(salt, parameters, address), so a protected address is hashed once per
sender salt epoch, not once per batch.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, composite, mapped_column

from scrubber.scheme import Params, RespondTo
from scrubber.store.models import NAMING
from scrubber.store.types import UTCDateTime

Timestamp = UTCDateTime()


class ResponderBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Protected(ResponderBase):
    """A protected address, canonical form only.

    ``recheck`` is set when it is added: the batches seen before that were
    examined without it and are looked through again (responder/recheck.py).
    """

    __tablename__ = "protected"
    canonical: Mapped[str] = mapped_column(String(254), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(Timestamp)
    recheck: Mapped[bool] = mapped_column(Boolean, server_default=true())


class CachedDigest(ResponderBase):
    __tablename__ = "digests"
    salt: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    params: Mapped[str] = mapped_column(String(40), primary_key=True)  # "t,m,p"
    canonical: Mapped[str] = mapped_column(
        ForeignKey("protected.canonical", ondelete="CASCADE"), primary_key=True
    )
    h: Mapped[bytes] = mapped_column(LargeBinary(32))


class Cursor(ResponderBase):
    """High-water mark per source (server + group, or spool directory)."""

    __tablename__ = "cursors"
    source: Mapped[str] = mapped_column(String(400), primary_key=True)
    mark: Mapped[str] = mapped_column(String(400))
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class SeenBatch(ResponderBase):
    """A batch the responder has examined; ``status`` is ok or why it was refused."""

    __tablename__ = "batches"
    batch_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    status: Mapped[str] = mapped_column(String(16))  # ok, refused, forged
    reason: Mapped[str | None] = mapped_column(Text)
    parts: Mapped[int] = mapped_column(Integer)
    salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    t: Mapped[int] = mapped_column(Integer)
    m: Mapped[int] = mapped_column(Integer)
    p: Mapped[int] = mapped_column(Integer)
    tag_length: Mapped[int] = mapped_column(Integer)
    respond_http: Mapped[str] = mapped_column(Text)
    respond_smtp: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    seen_at: Mapped[datetime] = mapped_column(Timestamp)
    # Protocol 2: what maps an address's H to its published value (the
    # nonce, Total, GCS parameters); NULL for a v1 batch.
    protocol: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    nonce: Mapped[bytes | None] = mapped_column(LargeBinary(16))
    total: Mapped[int | None] = mapped_column(BigInteger)
    gcs_p: Mapped[int | None] = mapped_column(Integer)
    gcs_m: Mapped[int | None] = mapped_column(BigInteger)
    # The article's values, over the columns above (scheme.Params validates;
    # responder migration r0004 removed the only rows it would refuse).
    params: Mapped[Params] = composite("t", "m", "p", "tag_length")
    respond: Mapped[RespondTo] = composite("respond_http", "respond_smtp")


class Match(ResponderBase):
    """A protected address found in a batch: the proof owed to its sender.

    ``occurrence`` counts the batches of the same key that listed the address
    (1 = first time); ``pings_due`` is 1, 2, 4 or 8 accordingly (escalation).
    """

    __tablename__ = "matches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.batch_id"))
    key: Mapped[bytes] = mapped_column(LargeBinary(32))
    canonical: Mapped[str] = mapped_column(String(254))
    proof: Mapped[bytes] = mapped_column(LargeBinary(16))
    occurrence: Mapped[int] = mapped_column(Integer)
    pings_due: Mapped[int] = mapped_column(Integer)
    pings_sent: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))  # pending, done, refused
    found_at: Mapped[datetime] = mapped_column(Timestamp)
    # Not sent before: a random delay drawn when first owed (responder/ping.py).
    not_before: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)

    __table_args__ = (
        Index("uq_matches_batch_canonical", "batch_id", "canonical", unique=True),
        Index("ix_matches_key_canonical", "key", "canonical"),
    )


class PingLog(ResponderBase):
    """Every ping attempt and the answer it got."""

    __tablename__ = "ping_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.batch_id"), index=True)
    channel: Mapped[str] = mapped_column(String(8))  # http, smtp
    proofs: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    answer: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(Timestamp)
