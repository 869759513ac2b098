"""One scan: read new articles, find the batches that list a protected address.

Order of work, cheapest first: the overview (Subjects) groups articles into
batches and tag ranges; one body per new batch teaches salt, parameters and
key; cost caps and expiry are checked before anything is hashed; then only
the parts whose range can hold one of our tags are fetched. Every body is
verified (signature by the article's Key, Digest, Range) by ``parse_article``
and must agree with its Subject and with the batch's first part.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrubber import scheme
from scrubber.article import (
    ArticleMeta,
    ParsedArticle,
    SubjectInfo,
    parse_article,
    parse_subject,
)
from scrubber.errors import ArticleError, ArticleGone
from scrubber.hashing import CHUNK, ThreadExecutor
from scrubber.keys import fingerprint
from scrubber.responder.models import Match, SeenBatch
from scrubber.responder.store import (
    ResponderStore,
    add_digests,
    cached_digests,
    get_mark,
    list_protected,
    params_key,
    set_mark,
)
from scrubber.store.types import utcnow
from scrubber.transport import ArticleSource, Entry

log = logging.getLogger("scrubber.responder")

MAX_PINGS = 8  # escalation: 1, 2, 4, 8, 8, ...
# Batch states: ok (verified, within caps), bound (key binding confirmed too),
# refused (caps, expiry), forged (key binding failed).
USABLE = ("ok", "bound")


@dataclass(frozen=True)
class Caps:
    """The most a batch may make us spend on hashing (DESIGN.md section 1)."""

    max_t: int = 4
    max_m: int = 65536  # KiB
    max_p: int = 8


@dataclass
class ScanReport:
    articles: int = 0  # new overview entries
    batches: int = 0  # batches examined for the first time
    bodies_fetched: int = 0
    hashed: int = 0  # Argon2 computations (cache misses)
    matches: int = 0  # protected addresses newly found in a batch
    escalations: int = 0  # of those, re-listed under the same key
    skipped: list[str] = field(default_factory=list)  # why an article or batch was passed over
    bodies: dict[str, int] = field(default_factory=dict)  # bodies fetched per batch id

    def skip(self, reason: str) -> None:
        log.info("skipped: %s", reason)
        self.skipped.append(reason)


@dataclass(frozen=True)
class _Part:
    entry: Entry
    info: SubjectInfo


@dataclass(frozen=True)
class _Run:
    """What every step of one scan uses."""

    store: ResponderStore
    source: ArticleSource
    caps: Caps
    now: datetime
    report: ScanReport
    executor: ThreadExecutor


def pings_due(occurrence: int) -> int:
    """Escalation: the n-th listing by one key earns 2**(n-1) pings, at most 8."""
    return min(1 << (occurrence - 1), MAX_PINGS)


def scan(
    store: ResponderStore,
    source: ArticleSource,
    *,
    caps: Caps | None = None,
    now: datetime | None = None,
) -> ScanReport:
    """Examine the articles after the source's high-water mark, then advance it.

    The mark moves only after every new batch is recorded, so a scan that
    fails half-way (server down) is repeated in full next time; matches are
    unique per (batch, address), so nothing is owed twice.
    """
    caps, now = caps or Caps(), now or utcnow()
    report = ScanReport()
    start = source.bodies_fetched
    entries, mark = source.overview(get_mark(store, source.name))
    report.articles = len(entries)
    # Nothing protected: nothing can match, so no body is worth fetching.
    batches = _by_batch(entries) if list_protected(store) else {}
    run = _Run(store, source, caps, now, report, ThreadExecutor())
    try:
        for batch_id, parts in batches.items():
            _scan_batch(run, batch_id, parts)
    finally:
        run.executor.close()
        report.bodies_fetched = source.bodies_fetched - start
    if mark is not None:
        set_mark(store, source.name, mark)
    return report


def _by_batch(entries: Sequence[Entry]) -> dict[str, list[_Part]]:
    batches: dict[str, list[_Part]] = defaultdict(list)
    for entry in entries:
        info = parse_subject(entry.subject)
        if info is not None:  # other articles in the group are not ours to judge
            batches[info.batch_id].append(_Part(entry, info))
    for parts in batches.values():
        parts.sort(key=lambda p: p.info.part)
    return batches


def _scan_batch(run: _Run, batch_id: str, parts: list[_Part]) -> None:
    with run.store.read() as session:
        known = session.get(SeenBatch, batch_id)
    first: ParsedArticle | None = None
    if known is None:
        known, first, parts = _learn(run, parts)
        if known is None:
            return
    if known.status not in USABLE:
        if first is not None or parts:
            log.info("batch %s: %s earlier (%s)", batch_id, known.status, known.reason)
        return
    mine, fresh = _own_tags(run.store, known, run.executor, run.report)
    tags = sorted(mine)
    found = _found(first, mine) if first is not None else []
    for part in parts:
        if not _may_hold(tags, part.info.first_tag, part.info.last_tag):
            continue
        parsed = _fetch(run.source, part, run.report)
        if parsed is None:
            continue
        mismatch = _disagrees(parsed.meta, known)
        if mismatch:
            run.report.skip(f"batch {batch_id} part {part.info.part}: {mismatch}")
            continue
        found += _found(parsed, mine)
    # One transaction: a new batch, the digests computed for it, its matches.
    with run.store.write() as session:
        if first is not None:
            session.add(known)
        add_digests(session, known.salt, params_key(known.params), fresh)
        _record_matches(session, known, found, run.report)


def _learn(
    run: _Run, parts: list[_Part]
) -> tuple[SeenBatch | None, ParsedArticle | None, list[_Part]]:
    """Fetch the lowest part that verifies; record the batch (ok or refused)."""
    for index, part in enumerate(parts):
        parsed = _fetch(run.source, part, run.report)
        if parsed is None:
            continue
        meta = parsed.meta
        refusal = _refusal(meta, run.caps, run.now)
        if refusal:
            run.report.skip(f"batch {meta.batch_id} refused: {refusal}")
        run.report.batches += 1
        seen = _seen_batch(meta, refusal, run.now)
        if refusal:
            with run.store.write() as session:
                session.add(seen)
        return seen, parsed, parts[index + 1 :]
    return None, None, []


def _fetch(source: ArticleSource, part: _Part, report: ScanReport) -> ParsedArticle | None:
    where = f"batch {part.info.batch_id} part {part.info.part} ({part.entry.message_id})"
    try:
        body = source.body(part.entry)
        report.bodies[part.info.batch_id] = report.bodies.get(part.info.batch_id, 0) + 1
        parsed = parse_article(body)
    except ArticleError as exc:
        report.skip(f"{where}: {exc.message}")
        return None
    except ArticleGone as exc:
        report.skip(f"{where}: {exc.message}")
        return None
    meta, info = parsed.meta, part.info
    subject_says = (info.batch_id, info.part, info.parts, info.first_tag, info.last_tag)
    if subject_says != (meta.batch_id, meta.part, meta.parts, meta.first_tag, meta.last_tag):
        report.skip(f"{where}: Subject does not match the signed metadata")
        return None
    return parsed


def _refusal(meta: ArticleMeta, caps: Caps, now: datetime) -> str | None:
    """Why a batch is not worth hashing for; checked before any Argon2 work."""
    params = meta.params  # within the scheme's rules: parse_article checked them
    if params.t > caps.max_t:
        return f"Argon2 t={params.t} is above the cap {caps.max_t}"
    if params.m > caps.max_m:
        return f"Argon2 m={params.m} KiB is above the cap {caps.max_m}"
    if params.p > caps.max_p:
        return f"Argon2 p={params.p} is above the cap {caps.max_p}"
    if meta.expires <= now:
        return f"expired at {meta.expires:%Y-%m-%d %H:%M}Z"
    return None


def _seen_batch(meta: ArticleMeta, refusal: str | None, now: datetime) -> SeenBatch:
    return SeenBatch(
        batch_id=meta.batch_id,
        key=meta.key,
        status="refused" if refusal else "ok",
        reason=refusal,
        parts=meta.parts,
        salt=meta.salt,
        params=meta.params,
        respond=meta.respond,
        expires_at=meta.expires,
        seen_at=now,
        protocol=1 if meta.v2 is None else 2,
        nonce=None if meta.v2 is None else meta.v2.nonce,
        total=None if meta.v2 is None else meta.total,
        gcs_p=None if meta.v2 is None else meta.v2.gcs.p,
        gcs_m=None if meta.v2 is None else meta.v2.gcs.m,
    )


def _disagrees(meta: ArticleMeta, batch: SeenBatch) -> str | None:
    """A later part must carry the batch's key, salt, parameters and addresses."""
    mine = (meta.key, meta.salt, meta.params, meta.parts)
    if mine != (batch.key, batch.salt, batch.params, batch.parts):
        return "key, salt or parameters differ from the batch's first part"
    if meta.respond != batch.respond:
        return "response addresses differ from the batch's first part"
    if _v2_of(meta) != (batch.nonce, batch.total, batch.gcs_p, batch.gcs_m):
        return "protocol, nonce, Total or GCS parameters differ from the batch's first part"
    return None


def _v2_of(meta: ArticleMeta) -> tuple[bytes | None, int | None, int | None, int | None]:
    if meta.v2 is None:
        return None, None, None, None
    return meta.v2.nonce, meta.total, meta.v2.gcs.p, meta.v2.gcs.m


def published(batch: SeenBatch, h: bytes) -> bytes:
    """What the batch publishes for the address whose Argon2 output is ``h``:
    v1 the first L octets, v2 the nonce-keyed value (8 octets, big-endian)."""
    if batch.protocol != 2:
        return h[: batch.tag_length]
    assert batch.nonce is not None and batch.total is not None
    assert batch.gcs_p is not None and batch.gcs_m is not None
    gcs = scheme.Gcs(p=batch.gcs_p, m=batch.gcs_m)
    return scheme.item_bytes(scheme.item_value(h, batch.nonce, batch.total, gcs))


def _own_tags(
    store: ResponderStore, batch: SeenBatch, executor: ThreadExecutor, report: ScanReport
) -> tuple[dict[bytes, tuple[str, bytes]], dict[str, bytes]]:
    """tag -> (canonical, proof) of every protected address under this batch's
    salt, and the digests newly computed (for the caller to cache)."""
    params = batch.params
    key = params_key(params)
    canonicals = list_protected(store)
    digests = cached_digests(store, batch.salt, key, canonicals)
    missing = [c for c in canonicals if c not in digests]
    futures = [
        executor.submit(missing[i : i + CHUNK], batch.salt, params)
        for i in range(0, len(missing), CHUNK)
    ]
    fresh = dict(zip(missing, (h for f in futures for h in f.result()), strict=True))
    report.hashed += len(fresh)
    mine = {published(batch, h): (c, h[scheme.PROOF_SLICE]) for c, h in (digests | fresh).items()}
    return mine, fresh


def _may_hold(tags: list[bytes], first: bytes, last: bytes) -> bool:
    index = bisect.bisect_left(tags, first)
    return index < len(tags) and tags[index] <= last


def _found(parsed: ParsedArticle, mine: dict[bytes, tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """(canonical, proof) of every protected address whose tag the part lists."""
    return [mine[tag] for tag in parsed.tags if tag in mine]


def _record_matches(
    session: Session, batch: SeenBatch, found: list[tuple[str, bytes]], report: ScanReport
) -> None:
    now = utcnow()
    for canonical, proof in found:
        exists = session.scalar(
            select(Match.id).where(Match.batch_id == batch.batch_id, Match.canonical == canonical)
        )
        if exists is not None:
            continue
        earlier = session.scalar(
            select(func.count()).where(Match.key == batch.key, Match.canonical == canonical)
        )
        occurrence = (earlier or 0) + 1
        session.add(
            Match(
                batch_id=batch.batch_id,
                key=batch.key,
                canonical=canonical,
                proof=proof,
                occurrence=occurrence,
                pings_due=pings_due(occurrence),
                pings_sent=0,
                state="pending",
                found_at=now,
            )
        )
        report.matches += 1
        if occurrence > 1:
            report.escalations += 1
            log.info(
                "key %s re-listed %s (listing %d): escalating to %d pings",
                fingerprint(batch.key),
                scheme.mask(canonical),
                occurrence,
                pings_due(occurrence),
            )
