"""``responder report``: per sender key, what it listed and how it answered."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select

from scrubber.keys import fingerprint
from scrubber.responder.models import Match, PingLog, SeenBatch
from scrubber.responder.store import ResponderStore
from scrubber.scheme import mask


@dataclass
class KeyReport:
    fingerprint: str
    batches: int = 0
    refused_batches: int = 0  # over the caps or expired
    forged_batches: int = 0  # key binding failed
    matches: int = 0
    pings_sent: int = 0
    pings_owed: int = 0
    answers: dict[str, int] = field(default_factory=dict)  # "http ok", "smtp failed", ...
    outcomes: dict[str, int] = field(default_factory=dict)  # per proof, as the sender said
    escalations: int = 0  # re-listings of an address already pinged for: compliance failures
    relisted: list[str] = field(default_factory=list)  # masked, one per re-listed address


def key_reports(store: ResponderStore) -> list[KeyReport]:
    with store.read() as session:
        batches = list(session.scalars(select(SeenBatch)))
        matches = list(session.scalars(select(Match)))
        log_rows = list(
            session.execute(select(PingLog.batch_id, PingLog.channel, PingLog.ok, PingLog.answer))
        )
    by_key: dict[bytes, KeyReport] = {}
    key_of: dict[str, bytes] = {}
    for batch in batches:
        entry = by_key.setdefault(batch.key, KeyReport(fingerprint(batch.key)))
        key_of[batch.batch_id] = batch.key
        entry.batches += 1
        entry.refused_batches += batch.status == "refused"
        entry.forged_batches += batch.status == "forged"
    relisted: dict[bytes, set[str]] = defaultdict(set)
    for match in matches:
        entry = by_key[match.key]
        entry.matches += 1
        entry.pings_sent += match.pings_sent
        if match.state == "pending":
            entry.pings_owed += match.pings_due - match.pings_sent
        if match.occurrence > 1:
            entry.escalations += 1
            relisted[match.key].add(match.canonical)
    for batch_id, channel, ok, answer in log_rows:
        entry = by_key[key_of[batch_id]]
        _count(entry.answers, [f"{channel} {'ok' if ok else 'failed'}"])
        if ok and channel == "http":
            _count(entry.outcomes, _outcomes(answer))
    for key, canonicals in relisted.items():
        by_key[key].relisted = sorted(mask(c) for c in canonicals)
    return sorted(by_key.values(), key=lambda r: (-r.escalations, r.fingerprint))


def _count(counter: dict[str, int], names: list[str]) -> None:
    for name in names:
        counter[name] = counter.get(name, 0) + 1


def _outcomes(answer: str) -> list[str]:
    """The per-proof outcomes of a listener's JSON answer; [] if it has none."""
    try:
        outcomes = json.loads(answer).get("outcomes", [])
    except (ValueError, AttributeError):
        return []
    return [str(o)[:20] for o in outcomes] if isinstance(outcomes, list) else []
