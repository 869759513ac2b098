"""Read-only views of batches for `batch ls` and `batch show`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrubber.errors import NotFoundError, UsageError
from scrubber.store import Store
from scrubber.store.models import Batch, BatchList, BatchPart, MailingList, Ping
from scrubber.store.queries import PartPost, get_batch, part_posts, parts_posted


@dataclass(frozen=True)
class BatchInfo:
    id: str
    created_at: datetime
    expires_at: datetime
    lists: list[str]
    addresses: int
    protocol: int
    tag_length: int
    newsgroup: str
    parts_total: int
    parts_posted: int
    pings: dict[str, int]  # outcome -> count

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PartInfo:
    part: int
    message_id: str
    first_tag: str
    last_tag: str
    count: int
    size: int
    posts: list[PartPost]  # every server that took the part, earliest first


@dataclass(frozen=True)
class BatchDetail:
    info: BatchInfo
    salt: str
    argon2: dict[str, int]
    v2: dict[str, Any] | None  # nonce (hex), gcs {p, m}, encoding; None for v1
    respond_http: str
    respond_smtp: str
    key: str
    parts: list[PartInfo]
    servers: dict[str, int]  # server -> parts it took

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("info"))
        return data

    @property
    def protocol_line(self) -> str:
        """One line for people: the protocol and what its tag block looks like."""
        if self.v2 is None:
            return f"1 ({self.info.tag_length}-byte tags)"
        gcs = self.v2["gcs"]
        return f"2 (GCS P={gcs['p']} M={gcs['m']}, {self.v2['encoding']})"


def batch_infos(store: Store) -> list[BatchInfo]:
    with store.read() as session:
        batches = session.scalars(select(Batch).order_by(Batch.created_at, Batch.id)).all()
        return [_info(session, b) for b in batches]


def batch_detail(store: Store, batch_id: str) -> BatchDetail:
    with store.read() as session:
        batch = get_batch(session, batch_id)
        info = _info(session, batch)
        rows = session.scalars(
            select(BatchPart).where(BatchPart.batch_id == batch.id).order_by(BatchPart.part)
        ).all()
        posts = part_posts(session, batch.id)
    parts = [
        PartInfo(
            r.part,
            r.message_id,
            r.first_tag.hex(),
            r.last_tag.hex(),
            r.count,
            r.size,
            posts.get(r.part, []),
        )
        for r in rows
    ]
    servers: dict[str, int] = {}
    for post in (p for part in parts for p in part.posts):
        servers[post.server] = servers.get(post.server, 0) + 1
    return BatchDetail(
        info=info,
        salt=batch.salt.hex(),
        argon2={"t": batch.t, "m": batch.m, "p": batch.p},
        v2=_v2_json(batch),
        respond_http=batch.respond_http,
        respond_smtp=batch.respond_smtp,
        key=batch.key_public,
        parts=parts,
        servers=dict(sorted(servers.items())),
    )


def _v2_json(batch: Batch) -> dict[str, Any] | None:
    if batch.protocol != 2 or batch.nonce is None:
        return None
    gcs = {"p": batch.gcs_p, "m": batch.gcs_m}
    return {"nonce": batch.nonce.hex(), "gcs": gcs, "encoding": batch.encoding}


def list_names(session: Session, batch_id: str) -> list[str]:
    """Names of the lists a batch was made from, sorted."""
    return list(
        session.scalars(
            select(MailingList.name)
            .join(BatchList, BatchList.list_id == MailingList.id)
            .where(BatchList.batch_id == batch_id)
            .order_by(MailingList.name)
        )
    )


def _info(session: Session, batch: Batch) -> BatchInfo:
    names = list_names(session, batch.id)
    posted = session.scalar(select(parts_posted(batch.id)))
    pings = session.execute(
        select(Ping.outcome, func.count()).where(Ping.batch_id == batch.id).group_by(Ping.outcome)
    ).all()
    return BatchInfo(
        id=batch.id,
        created_at=batch.created_at,
        expires_at=batch.expires_at,
        lists=names,
        addresses=batch.count,
        protocol=batch.protocol,
        tag_length=batch.tag_length,
        newsgroup=batch.newsgroup,
        parts_total=batch.parts_total,
        parts_posted=int(posted or 0),
        pings={outcome: int(n) for outcome, n in pings},
    )


@dataclass(frozen=True)
class KeyInUse:
    """A key that signed batches not yet expired: responders may still bind them."""

    key_public: str  # base64, as the batch's Key
    until: datetime  # the last of those batches expires then


def keys_in_use(store: Store, now: datetime) -> list[KeyInUse]:
    """Every key of an unexpired batch, with its last expiry (the key endpoint)."""
    with store.read() as session:
        rows = session.execute(
            select(Batch.key_public, func.max(Batch.expires_at))
            .where(Batch.expires_at > now)
            .group_by(Batch.key_public)
            .order_by(Batch.key_public)
        )
        return [KeyInUse(key, until) for key, until in rows]


def resolve_batch_id(store: Store, given: str) -> str:
    """The batch id ``given`` names: an id, ``latest`` (the newest batch), or a
    unique prefix of an id; a one-line error otherwise."""
    with store.read() as session:
        if given == "latest":
            newest = session.scalar(select(Batch.id).order_by(Batch.created_at.desc()).limit(1))
            if newest is None:
                raise NotFoundError("no batches yet; 'scrubber batch create LIST' makes one")
            return newest
        if session.get(Batch, given) is not None or not given:
            return given
        escaped = given.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        matches = session.scalars(
            select(Batch.id).where(Batch.id.like(f"{escaped}%", escape="\\")).limit(3)
        ).all()
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(
            f"batch prefix {given!r} is ambiguous ({', '.join(matches[:2])}, ...); give more of it"
        )
    return given  # the command's own lookup says it does not exist
