"""The ingest path as a library: outcomes, suppression, group commit."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from scrubber import lists, scheme
from scrubber.config import Settings
from scrubber.listener.committer import GroupCommitter
from scrubber.listener.ingestor import Ingestor, ThreadRecorder
from scrubber.listener.ping import Outcome, PingRequest, PingResult, decode_proof
from scrubber.listener.sql import PingSql
from scrubber.store import Store
from scrubber.store.models import Address, Ping, PingTally, Suppression
from scrubber.workspace import Workspace, init_workspace, open_store
from tests.listener_support import make_batch, proof_for, stored_outcomes
from tests.support import wait_until

ADDRESSES = [f"user{i}@example.com" for i in range(20)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    """A workspace on SQLite and one on a real PostgreSQL: the group commit's
    SQL is written for both."""
    if request.param == "sqlite":
        return init_workspace(tmp_path / "ws")
    url = request.getfixturevalue("pg_url")
    return init_workspace(tmp_path / "ws", Settings(database_url=url))


def test_record_outcomes_and_suppression(ws: Workspace) -> None:
    batch = make_batch(ws, ADDRESSES)
    store = open_store(ws)
    ingestor = Ingestor(store)
    good = proof_for("User3@Example.com", batch)
    other = proof_for("nobody@example.com", batch)
    result = ingestor.record(
        batch.token, [good, good, other, "%%%", "AAAA"], channel="http", peer="203.0.113.77"
    )
    assert result.batch_id == batch.id
    assert result.outcomes == [
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
        Outcome.INVALID,
        Outcome.INVALID,
        Outcome.INVALID,
    ]
    assert result.suppressed == 1
    again = ingestor.record(batch.token, [good], channel="smtp")
    assert again.outcomes == [Outcome.DUPLICATE]
    assert again.suppressed == 0
    unknown = ingestor.record("no-such-token", [good])
    assert unknown.batch_id is None
    assert unknown.outcomes == [Outcome.UNKNOWN_BATCH]
    exported = list(lists.iter_export(store, "customers"))
    assert "user3@example.com" not in exported
    assert len(exported) == len(ADDRESSES) - 1
    # Rows only for the accepted proof; the worthless ones are tallied.
    assert stored_outcomes(store) == {
        ("http", "accepted"): 1,
        ("http", "duplicate"): 1,
        ("http", "invalid"): 3,
        ("smtp", "duplicate"): 1,
    }
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Ping)) == 1
        # One tally row per channel (two if a minute ended in between).
        assert 2 <= (session.scalar(select(func.count()).select_from(PingTally)) or 0) <= 4
        supp = session.scalars(select(Suppression)).one()
        assert supp.channel == "dni-ping"
        assert supp.batch_id == batch.id
        ping = session.get(Ping, supp.ping_id)
        assert ping is not None
        assert ping.outcome == "accepted"
        assert ping.channel == "http"
        # The ledger's record of it: why, from where, when asked, and the evidence.
        assert (supp.reason, supp.origin, supp.client) == ("registry", "http", "203.0.113.0/24")
        assert supp.received_at == ping.received_at
        assert supp.request_id == str(ping.id)
    store.close()


def test_worthless_proofs_are_tallied_not_stored(ws: Workspace) -> None:
    """A flood of forged and repeated proofs: no row per proof, at most one
    tally row per batch, channel, client and minute; unknown tokens write nothing."""
    batch = make_batch(ws, ADDRESSES)
    store = open_store(ws)
    ingestor = Ingestor(store)
    good = proof_for(ADDRESSES[0], batch)
    minute = datetime(2026, 12, 1, 21, 30, tzinfo=UTC)
    forged = [scheme.b64url(os.urandom(16)) for _ in range(1000)]

    def request(proofs: list[str], peer: str, second: int, token: str = batch.token) -> PingRequest:
        received = (minute + timedelta(seconds=second)).timestamp()
        return PingRequest(token, proofs, "http", peer, received)

    flood = [request(forged, "192.0.2.1", s) for s in range(0, 60, 3)]  # 20 in one minute
    flood += [request([good] * 10, "192.0.2.2", 5)]  # one accepted, nine repeated
    flood += [request(forged, "192.0.2.1", 61)]  # the next minute
    flood += [request(forged, "192.0.2.3", 7, token="no-such-token")] * 5
    results = ingestor.record_group(flood)
    assert [r.worthless for r in results] == [1000] * 20 + [9] + [1000] * 6
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Ping)) == 1
        tallies = session.execute(
            select(
                PingTally.peer, PingTally.minute, PingTally.invalid, PingTally.duplicate
            ).order_by(PingTally.peer, PingTally.minute)
        ).all()
    assert tallies == [
        ("192.0.2.1", minute, 20_000, 0),
        ("192.0.2.1", minute + timedelta(minutes=1), 1000, 0),
        ("192.0.2.2", minute, 0, 9),
    ]
    again = ingestor.record_group([request(forged[:5], "192.0.2.1", 59)])  # same minute again
    assert again[0].outcomes == [Outcome.INVALID] * 5
    with store.read() as session:
        first = session.get(PingTally, (batch.id, minute, "http", "192.0.2.1"))
        assert first is not None and first.invalid == 20_005
    store.close()


def test_group_commit_many_requests_one_transaction(ws: Workspace) -> None:
    batch = make_batch(ws, ADDRESSES)
    store = open_store(ws)
    committed: list[int] = []

    class Observer:
        def committed(self, seconds: float, requests: object) -> None:
            committed.append(len(requests))  # type: ignore[arg-type]

        def outcome(self, channel: str, outcome: Outcome, count: int) -> None:
            pass

        def failed(self, requests: int) -> None:
            raise AssertionError("no failure expected")

    async def send_all() -> list[PingResult]:
        committer = GroupCommitter(ThreadRecorder(Ingestor(store)), observer=Observer())
        # Queue everything before the committer starts, so one group takes it all.
        pings = [
            asyncio.ensure_future(
                committer.ping(PingRequest(batch.token, [proof_for(a, batch)], "http", "127.0.0.1"))
            )
            for a in ADDRESSES
        ]
        await asyncio.sleep(0)  # each ping() has queued its request
        committer.start()
        results = await asyncio.gather(*pings)
        await committer.close()
        return results

    results = asyncio.run(send_all())
    assert all(r.outcomes == [Outcome.ACCEPTED] for r in results)
    assert committed == [len(ADDRESSES)]
    assert list(lists.iter_export(store, "customers")) == []
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == len(ADDRESSES)
    store.close()


def test_expired_batch_still_honoured(ws: Workspace) -> None:
    batch = make_batch(ws, ADDRESSES)
    store = open_store(ws)
    from datetime import timedelta

    from scrubber.store.models import Batch
    from scrubber.store.types import utcnow

    with store.write() as session:
        found = session.get(Batch, batch.id)
        assert found is not None
        found.expires_at = utcnow() - timedelta(days=1)
    result = Ingestor(store).record(batch.token, [proof_for(ADDRESSES[0], batch)])
    assert result.outcomes == [Outcome.ACCEPTED]
    store.close()


def test_already_suppressed_address_and_two_batches(ws: Workspace) -> None:
    first = make_batch(ws, ADDRESSES)
    second = make_batch(ws, ADDRESSES, list_name="newsletter")
    store = open_store(ws)
    lists.suppress(store, [ADDRESSES[0]])  # by hand, before any ping
    ingestor = Ingestor(store)
    proof0 = proof_for(ADDRESSES[0], first)
    proof1 = proof_for(ADDRESSES[1], first)
    assert proof_for(ADDRESSES[1], second) == proof1  # same salt epoch, same proof
    # One group: both batches, both addresses; each address suppressed once.
    results = ingestor.record_group(
        [
            PingRequest(first.token, [proof0, proof1], "http", "192.0.2.1"),
            PingRequest(second.token, [proof1], "smtp", "192.0.2.2"),
        ]
    )
    assert [r.outcomes for r in results] == [
        [Outcome.ACCEPTED, Outcome.ACCEPTED],
        [Outcome.ACCEPTED],
    ]
    assert [r.suppressed for r in results] == [1, 0]
    with store.read() as session:
        rows = {s.address_id: s for s in session.scalars(select(Suppression))}
        assert len(rows) == 2
        assert sorted(s.channel for s in rows.values()) == ["dni-ping", "manual"]
        # As reports order them: by arrival, then id (within a group, ids
        # follow (batch, proof) order: ingestor.py, _insert).
        pings = session.scalars(select(Ping).order_by(Ping.received_at, Ping.id)).all()
    assert [(p.channel, p.peer) for p in pings] == [
        ("http", "192.0.2.1"),
        ("http", "192.0.2.1"),
        ("smtp", "192.0.2.2"),
    ]
    assert all(p.received_at <= p.committed_at for p in pings)
    store.close()


def test_a_proof_of_the_epoch_outside_the_batch_is_invalid(ws: Workspace) -> None:
    """Proofs are looked up in the salt epoch's digests (schema 0009), which
    hold every hashed address of the epoch: a proof whose address was hashed
    for another batch, or left out of this one as suppressed, is not one of
    this batch's and stays invalid; the batch that holds it accepts it."""
    first = make_batch(ws, ADDRESSES[:10])
    store = open_store(ws)
    lists.suppress(store, [ADDRESSES[1]])
    store.close()
    second = make_batch(ws, ADDRESSES[10:] + ADDRESSES[:2], list_name="newsletter")
    assert (first.epoch_id, first.salt) == (second.epoch_id, second.salt)
    store = open_store(ws)
    ingestor = Ingestor(store)
    only_first = proof_for(ADDRESSES[3], first)  # hashed, in the epoch, not in `second`
    left_out = proof_for(ADDRESSES[1], second)  # listed, hashed, but suppressed before `second`
    only_second = proof_for(ADDRESSES[12], second)
    both = proof_for(ADDRESSES[0], second)
    results = ingestor.record_group(
        [
            PingRequest(second.token, [only_first, left_out, only_second, both], "http", "x"),
            PingRequest(first.token, [only_second, only_first, both, both], "smtp", "y"),
        ]
    )
    assert [r.outcomes for r in results] == [
        [Outcome.INVALID, Outcome.INVALID, Outcome.ACCEPTED, Outcome.ACCEPTED],
        [Outcome.INVALID, Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.DUPLICATE],
    ]
    again = ingestor.record(second.token, [both, only_first], channel="http")
    assert again.outcomes == [Outcome.DUPLICATE, Outcome.INVALID]
    with store.read() as session:
        accepted = session.execute(select(Ping.batch_id, Ping.address_id)).all()
    ids = {i: _address_id(store, ADDRESSES[i]) for i in (0, 3, 12)}
    assert sorted((b == first.id, a) for b, a in accepted) == sorted(
        [(False, ids[12]), (False, ids[0]), (True, ids[3]), (True, ids[0])]
    )
    store.close()


def _address_id(store: Store, canonical: str) -> int:
    with store.read() as session:
        found = session.scalar(select(Address.id).where(Address.canonical == canonical))
    assert found is not None
    return found


def _decode_slowly(value: str) -> bytes | None:
    try:
        raw = scheme.from_b64url(value)
    except ValueError:
        return None
    return raw if len(raw) == 16 else None


@given(
    st.one_of(
        st.binary(min_size=16, max_size=16).map(scheme.b64url),
        st.text("ABCabcxyz019-_+/= \n", max_size=30),
    )
)
def test_decode_proof_fast_path_agrees_with_the_scheme(value: str) -> None:
    assert decode_proof(value) == _decode_slowly(value)


def test_one_group_holds_pings_and_unsubscribes_in_request_order(ws: Workspace) -> None:
    """The writer's group may mix pings with one-click and mailto unsubscribes:
    one transaction, one answer per request in the order sent; the same
    address pinged and unsubscribed in one group is suppressed once (the
    group records its pings first)."""
    from scrubber import ledger, unsubscribe
    from scrubber.listener.ping import MAILTO, ONE_CLICK, UnsubscribeRequest

    batch = make_batch(ws, ADDRESSES)
    secret = unsubscribe.load_secret(ws.root)
    store = open_store(ws)
    ingestor = Ingestor(store, check_key=unsubscribe.check_key(secret))

    def unsub(address: str, channel: str, check: bytes | None = None) -> UnsubscribeRequest:
        who = unsubscribe.subscriber(store, address, "customers", secret=secret)
        token = unsubscribe.make_token(secret, who)
        found = who.check if check is None else check
        return UnsubscribeRequest(
            token, who.list_id, who.address_id, found, channel, "198.51.100.9", f"r-{address}"
        )

    requests = [
        unsub("user1@example.com", ONE_CLICK),
        PingRequest(batch.token, [proof_for("user1@example.com", batch)], "http", "203.0.113.1"),
        PingRequest(batch.token, [proof_for("user2@example.com", batch)], "http", "203.0.113.1"),
        unsub("user3@example.com", MAILTO),
        unsub("user3@example.com", ONE_CLICK),  # the same person again: no second row
        unsub("user4@example.com", MAILTO, check=b"xyz"),  # an id now someone else's
    ]
    results = ingestor.record_group(requests)
    assert [(r.batch_id, r.outcomes, r.suppressed) for r in results] == [
        (None, [Outcome.DUPLICATE], 0),  # the ping below suppressed it first
        (batch.id, [Outcome.ACCEPTED], 1),
        (batch.id, [Outcome.ACCEPTED], 1),
        (None, [Outcome.ACCEPTED], 1),
        (None, [Outcome.DUPLICATE], 0),
        (None, [Outcome.INVALID], 0),
    ]
    rows = {row.canonical: row for row in ledger.rows(store)}
    assert {a: r.channel for a, r in rows.items()} == {
        "user1@example.com": "dni-ping",
        "user2@example.com": "dni-ping",
        "user3@example.com": "mailto",
    }
    mailto = rows["user3@example.com"]
    assert (mailto.request_id, mailto.client, mailto.origin) == (
        "r-user3@example.com",
        "198.51.100.0/24",
        "customers",
    )
    store.close()


def test_a_new_suppression_logs_its_address_masked(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    """The address text is read for the log line only (not with the proofs):
    one line per newly suppressed address, masked, none for a repeat."""
    batch = make_batch(ws, ADDRESSES)
    store = open_store(ws)
    ingestor = Ingestor(store)
    proofs = [proof_for(a, batch) for a in ADDRESSES[:3]]
    with caplog.at_level("INFO", logger="scrubber.listener"):
        ingestor.record_group([PingRequest(batch.token, proofs, "http", "192.0.2.9")])
        ingestor.record_group([PingRequest(batch.token, proofs[:1], "http", "192.0.2.9")])
    lines = [r.getMessage() for r in caplog.records if "event=suppressed" in r.getMessage()]
    assert lines == [
        f"event=suppressed batch={batch.id} address={scheme.mask(a)}" for a in ADDRESSES[:3]
    ]
    assert not any(a in line for a in ADDRESSES for line in lines)
    store.close()


@pytest.mark.postgres
def test_listeners_racing_for_the_same_proofs_never_deadlock(pg_url: str, tmp_path: Path) -> None:
    """Two listeners of a fleet, one group each, the same two proofs in
    opposite arrival orders. The other listener (here by hand) holds the
    lower proof's row; ours must wait for it before taking the higher one,
    or each waits for the other: PostgreSQL's "deadlock detected", and a
    503 for every ping of both groups (seen in bench/listen_http.py --fleet 2)."""
    ws = init_workspace(tmp_path / "ws", Settings(database_url=pg_url))
    batch = make_batch(ws, ADDRESSES)
    store, other = open_store(ws), open_store(ws)
    pairs = sorted(
        (decode_proof(proof_for(a, batch)), proof_for(a, batch), a) for a in ADDRESSES[:2]
    )
    (low, low_text, low_address), (high, _, high_address) = pairs
    sql = PingSql.for_dialect("postgresql")

    def take(driver: Any, proof: bytes | None, address: str) -> None:
        now = datetime.now(UTC)
        row = [batch.token, batch.id, proof, "accepted", "http", "192.0.2.8"]
        driver.execute(sql.insert_accepted(1), [*row, _address_id(store, address), now, now])

    ours = Ingestor(store)
    requests = [PingRequest(batch.token, [t], "http", "192.0.2.9") for t in (pairs[1][1], low_text)]
    with ThreadPoolExecutor(1) as pool, other.driver_transaction() as driver:
        take(driver, low, low_address)
        result = pool.submit(ours.record_group, requests)
        assert wait_until(lambda: _waiting_for_a_lock(store) or result.done(), timeout=10)
        take(driver, high, high_address)  # the other listener goes on, and commits
    assert [r.outcomes for r in result.result()] == [[Outcome.DUPLICATE]] * 2
    store.close()
    other.close()


def _waiting_for_a_lock(store: Store) -> bool:
    with store.read() as session:
        waiting = session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
    return bool(waiting)
