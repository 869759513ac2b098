"""Looking through batches already seen for addresses protected after them.

A scan examines each batch once, for the addresses protected at the time, and
then moves the source's high-water mark past it: an address added later
would never be looked up in it, and its opt-out silently missed. So
``responder add`` flags new addresses, and the next run, after its scan,
reads the whole overview again (Subjects only, no bodies) and, for every
batch seen before the address was added that is still usable (verified, key
binding not failed) and unexpired, hashes the address under the batch's salt
and fetches only the parts whose tag range holds its tag. The flag is
cleared only after that pass read the overview, so a news-server outage
leaves it for the next run.

The part-level steps are scan.py's own (fetch and verify, range test,
agreement with the batch, recording matches), so both paths judge a part
alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from scrubber.hashing import ThreadExecutor
from scrubber.responder.models import SeenBatch
from scrubber.responder.scan import (
    USABLE,
    ScanReport,
    _by_batch,
    _disagrees,
    _fetch,
    _found,
    _may_hold,
    _own_tags,
    _Part,
    _record_matches,
)
from scrubber.responder.store import (
    ResponderStore,
    add_digests,
    awaiting_recheck,
    params_key,
    recheck_done,
)
from scrubber.store.types import utcnow
from scrubber.transport import ArticleSource


def batches_to_recheck(
    store: ResponderStore, added: dict[str, datetime], now: datetime
) -> dict[str, tuple[SeenBatch, set[str]]]:
    """batch id -> (batch, the flagged addresses added after it was seen)."""
    if not added:
        return {}
    with store.read() as session:
        batches = session.scalars(
            select(SeenBatch).where(
                SeenBatch.status.in_(USABLE),
                SeenBatch.expires_at > now,
                SeenBatch.seen_at < max(added.values()),
            )
        )
        wanted: dict[str, tuple[SeenBatch, set[str]]] = {}
        for batch in batches:
            later = {c for c, when in added.items() if when > batch.seen_at}
            if later:
                wanted[batch.batch_id] = (batch, later)
        return wanted


def recheck(
    store: ResponderStore, source: ArticleSource, *, now: datetime | None = None
) -> ScanReport | None:
    """Look through earlier batches for flagged addresses; None when none is flagged.

    ``batches`` in the report counts the batches looked through again.
    """
    added = awaiting_recheck(store)
    if not added:
        return None
    report = ScanReport()
    due = batches_to_recheck(store, added, now or utcnow())
    if due:
        start = source.bodies_fetched
        entries, _ = source.overview(None)
        report.articles = len(entries)
        parts = _by_batch(entries)
        executor = ThreadExecutor()
        try:
            for batch_id, (batch, canonicals) in due.items():
                _recheck_batch(
                    _Pass(store, source, executor, report),
                    batch,
                    canonicals,
                    parts.get(batch_id, []),
                )
                report.batches += 1
        finally:
            executor.close()
            report.bodies_fetched = source.bodies_fetched - start
    recheck_done(store, added)
    return report


@dataclass(frozen=True)
class _Pass:
    store: ResponderStore
    source: ArticleSource
    executor: ThreadExecutor
    report: ScanReport


def _recheck_batch(run: _Pass, batch: SeenBatch, canonicals: set[str], parts: list[_Part]) -> None:
    store, source, report = run.store, run.source, run.report
    # Digests of the addresses protected earlier are cached: only the new ones are hashed.
    everyone, fresh = _own_tags(store, batch, run.executor, report)
    # Only the new addresses' tags choose parts: the others were looked for already.
    mine = {tag: found for tag, found in everyone.items() if found[0] in canonicals}
    tags = sorted(mine)
    found: list[tuple[str, bytes]] = []
    for part in parts:
        if not _may_hold(tags, part.info.first_tag, part.info.last_tag):
            continue
        parsed = _fetch(source, part, report)
        if parsed is None:
            continue
        mismatch = _disagrees(parsed.meta, batch)
        if mismatch:
            report.skip(f"batch {batch.batch_id} part {part.info.part}: {mismatch}")
            continue
        found += _found(parsed, mine)
    with store.write() as session:
        add_digests(session, batch.salt, params_key(batch.params), fresh)
        _record_matches(session, batch, found, report)
