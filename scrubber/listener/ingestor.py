"""Where a ping is verified and stored: the one write path of the listener.

``Ingestor.record_group`` takes any number of ping requests and, in ONE
transaction, looks their proofs up (the digests of the batch's epoch, then its members),
decides each proof's outcome, stores a ``Ping`` row per accepted proof,
suppresses its address, and counts the worthless proofs (invalid, repeated)
in one ``PingTally`` row per batch, channel, client and minute; one-click
and mailto unsubscribes in the group are recorded in the ledger in the same
transaction (``unsubscribe.honour_on``). ``scrubber listen`` runs it in its
writer process (child.py); ``ThreadRecorder`` runs it in this process, off
the loop, for the library API and tests.

Exactly once, even with several listener processes: on SQLite the group's
transaction holds the one write lock (BEGIN IMMEDIATE) from its checks to its
commit, so the checks are exact; on PostgreSQL the partial unique index
``uq_pings_accepted`` (one accepted ping per batch and proof) and the
primary key of ``suppressions`` decide, through ON CONFLICT DO NOTHING, and a
ping that lost the race to another listener is stored as a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, select

from scrubber import ledger, scheme
from scrubber.listener.ping import (
    Outcome,
    PingRequest,
    PingResult,
    Request,
    UnsubscribeRequest,
    clean_token,
    decode_proof,
)
from scrubber.listener.sql import ROWS_PER_STATEMENT, PingSql
from scrubber.store import Store
from scrubber.store.models import Batch
from scrubber.store.types import utcnow
from scrubber.unsubscribe import Honoured, Subscriber, honour_on

log = logging.getLogger("scrubber.listener")

_LOOKUP_CHUNK = 500  # proofs per IN (...) query
T = TypeVar("T")


class Ingestor:
    """Verifies and stores pings. Thread-safe; the sync API others may use.

    ``record(token, proofs)`` stores one request and returns its outcomes;
    ``record_group(requests)`` stores many in one transaction.
    """

    def __init__(self, store: Store, *, check_key: bytes = b"") -> None:
        self.store = store
        self.check_key = check_key  # unsubscribe.check_key: unsubscribes' address checks
        self._tokens: dict[str, str] = {}  # token -> batch id; batches never change token
        self._sql = PingSql.for_dialect(store.engine.dialect.name)

    def known(self, token: str) -> str | None:
        """The batch id of a token seen before, without touching the database."""
        return self._tokens.get(token)

    def lookup(self, token: str) -> str | None:
        """The batch id a response token stands for, or None."""
        token_ok = clean_token(token)
        if token_ok is None:
            return None
        if token_ok in self._tokens:
            return self._tokens[token_ok]
        with self.store.read() as session:
            found = session.scalar(select(Batch.id).where(Batch.token == token_ok))
        if found is not None:
            self._tokens[token_ok] = found
        return found

    def record(
        self,
        token: str,
        proofs: Sequence[str],
        *,
        channel: str = "api",
        peer: str = "local",
    ) -> PingResult:
        """Verify and store the proofs of one request; committed on return."""
        return self.record_group([PingRequest(token, list(proofs), channel, peer)])[0]

    def record_group(self, requests: Sequence[Request]) -> list[PingResult]:
        """Verify and store all requests in one transaction; committed on return.

        Pings and unsubscribe requests may come in one group; the answers are
        in the order of ``requests``. The pings are recorded first, so an
        address both pinged and unsubscribed in one group (milliseconds
        apart) is credited to its ping.
        """
        pings = [r for r in requests if isinstance(r, PingRequest)]
        if len(pings) == len(requests):  # the usual group: the driver's transaction only
            with self.store.driver_transaction() as driver:
                return self._pings(driver, pings)
        # Unsubscribes (rare) go through unsubscribe.honour_on, on SQLAlchemy's Connection.
        with self.store.write_connection() as conn:
            driver = conn.connection.driver_connection
            answers = iter(self._pings(driver, pings) if pings else [])
            return [
                next(answers)
                if isinstance(r, PingRequest)
                else _unsubscribe(conn, r, self.check_key)
                for r in requests
            ]

    def _pings(self, driver: Any, pings: list[PingRequest]) -> list[PingResult]:
        """The pings of a group, on the driver's connection inside its transaction."""
        cursor = driver.cursor()
        try:
            return _Group(cursor, self._sql, self._tokens, pings).run()
        finally:
            cursor.close()


_HONOURED = {
    Honoured.SUPPRESSED: Outcome.ACCEPTED,
    Honoured.ALREADY: Outcome.DUPLICATE,
    Honoured.UNKNOWN: Outcome.INVALID,
}


def _unsubscribe(conn: Connection, request: UnsubscribeRequest, key: bytes) -> PingResult:
    """One one-click or mailto request, in the group's transaction (its token's
    MAC was checked at the edge; its address check is compared here)."""
    done = honour_on(
        conn,
        Subscriber(request.list_id, request.address_id, request.check),
        request.token,
        key,
        channel=ledger.Channel(request.channel),
        client=request.peer,
        received_at=request.received_at,
        request_id=request.request_id,
    )
    if done is Honoured.SUPPRESSED:
        log.info("event=unsubscribed channel=%s request=%s", request.channel, request.request_id)
    return PingResult(None, [_HONOURED[done]], int(done is Honoured.SUPPRESSED))


# A tally's key: batch, minute (POSIX seconds at its start), channel, peer;
# its counts: invalid, duplicate.
_TallyKey = tuple[str, int, str, str]
_Key = tuple[str, bytes]  # batch id, proof
# A stored ping as bind values, in PING_COLUMNS order.
_CHANNEL, _PEER, _RECEIVED = 4, 5, 7


def _ledger_values(key: _Key, ping_id: int, ping: list[Any]) -> tuple[Any, ...]:
    """The ledger columns after address_id and suppressed_at (SUPPRESSION_COLUMNS)
    of the suppression an accepted ping makes: its request's time, channel and
    masked client; the batch and the ping are the evidence."""
    return (
        ledger.Channel.DNI_PING.value,
        ledger.Reason.REGISTRY.value,
        ping[_CHANNEL],
        ping[_RECEIVED],
        key[0],
        ping_id,
        str(ping_id),
        ledger.mask_client(ping[_PEER]),
    )


@dataclass
class _Accepted:
    """A proof accepted by its checks, to be stored as a Ping row."""

    request: int
    position: int  # in its request's outcomes
    key: _Key
    values: list[Any]  # bind values, in PING_COLUMNS order


class _Group:
    """One group commit: decide every outcome, then write in bulk.

    Only accepted proofs become rows (pings, suppressions); the worthless
    ones (invalid, repeated) are added to one tally row per batch, channel,
    client and minute, and requests for an unknown token write nothing.
    """

    def __init__(
        self,
        cursor: Any,  # the driver's (PEP 249) cursor, inside the write transaction
        sql: PingSql,
        tokens: dict[str, str],
        requests: Sequence[PingRequest],
    ) -> None:
        self.cursor = cursor
        self.sql = sql
        self.tokens = tokens
        self.requests = requests
        self.now = utcnow()

    def run(self) -> list[PingResult]:
        batch_ids = [self._batch_id(r.token) for r in self.requests]
        decoded = [[decode_proof(p) for p in r.proofs] for r in self.requests]
        entries, taken = self._entries(_wanted(batch_ids, decoded))
        outcomes, accepted = self._decide(batch_ids, decoded, entries, taken)
        won = self._insert(accepted, outcomes)
        order = [row.key for row in accepted if row.key in won]
        evidence = {row.key: row.values for row in accepted}
        suppressed = self._suppress(won, entries, order, evidence)
        self._tally(batch_ids, outcomes)
        newly = [0] * len(self.requests)
        for row in accepted:
            if row.key in suppressed:
                newly[row.request] += 1
        return [
            PingResult(batch_id, found, count)
            for batch_id, found, count in zip(batch_ids, outcomes, newly, strict=True)
        ]

    def _batch_id(self, token: str) -> str | None:
        known = self.tokens.get(token)  # only well-formed tokens are kept
        if known is not None:
            return known
        token_ok = clean_token(token)
        if token_ok is None:
            return None
        if token_ok not in self.tokens:
            self.cursor.execute(self.sql.token(), (token_ok,))
            found = self.cursor.fetchone()
            if found is None:
                return None
            self.tokens[token_ok] = found[0]
        return self.tokens[token_ok]

    def _entries(self, wanted: dict[str, set[bytes]]) -> tuple[dict[_Key, int], set[_Key]]:
        """The proofs found in the index, (batch, proof) -> address id, and
        those among them already accepted before."""
        found: dict[_Key, int] = {}
        taken: set[_Key] = set()
        for batch_id, proofs in wanted.items():
            for chunk in _chunks(sorted(proofs)):
                self.cursor.execute(self.sql.entries(len(chunk)), (batch_id, *chunk))
                for proof, address_id, ping_id in self.cursor.fetchall():
                    key = (batch_id, bytes(proof))
                    found[key] = address_id
                    if ping_id is not None:
                        taken.add(key)
        return found, taken

    def _decide(
        self,
        batch_ids: list[str | None],
        decoded: list[list[bytes | None]],
        entries: dict[_Key, int],
        taken: set[_Key],
    ) -> tuple[list[list[Outcome]], list[_Accepted]]:
        outcomes: list[list[Outcome]] = []
        accepted: list[_Accepted] = []
        committed_at = self.sql.timestamp(self.now)
        for index, (request, batch_id) in enumerate(zip(self.requests, batch_ids, strict=True)):
            if batch_id is None:
                outcomes.append([Outcome.UNKNOWN_BATCH] * len(request.proofs))
                continue
            found: list[Outcome] = []
            for proof in decoded[index]:
                key = (batch_id, proof) if proof is not None else None
                if key is None or key not in entries:
                    found.append(Outcome.INVALID)
                    continue
                if key in taken:
                    found.append(Outcome.DUPLICATE)
                    continue
                taken.add(key)
                values = [
                    request.token,
                    batch_id,
                    proof,
                    Outcome.ACCEPTED.value,
                    request.channel[:8],
                    request.peer[:64],
                    entries[key],
                    self.sql.timestamp(request.received_at),
                    committed_at,
                ]
                accepted.append(_Accepted(index, len(found), key, values))
                found.append(Outcome.ACCEPTED)
            outcomes.append(found)
        return outcomes, accepted

    def _insert(self, accepted: list[_Accepted], outcomes: list[list[Outcome]]) -> dict[_Key, int]:
        """Store the accepted pings; returns the ping id per (batch, proof) this
        group won. One another listener committed first is a duplicate here."""
        won: dict[_Key, int] = {}
        # In (batch, proof) order, not arrival order: listeners of a fleet
        # racing for the same proofs then wait for each other's rows in one
        # order, never in a circle (PostgreSQL: "deadlock detected").
        ordered = sorted(accepted, key=lambda row: row.key)
        for chunk in _chunks(ordered, ROWS_PER_STATEMENT):
            params = [value for row in chunk for value in row.values]
            self.cursor.execute(self.sql.insert_accepted(len(chunk)), params)
            won.update(((b, bytes(p)), i) for i, b, p in self.cursor.fetchall())
        for row in accepted:
            if row.key not in won:
                outcomes[row.request][row.position] = Outcome.DUPLICATE
        return won

    def _suppress(
        self,
        won: dict[_Key, int],
        entries: dict[_Key, int],
        order: list[_Key],
        evidence: dict[_Key, list[Any]],
    ) -> set[_Key]:
        """Suppress the addresses of accepted proofs (the first ping of an
        address in the group gets the credit); returns the keys that did."""
        by_address: dict[int, _Key] = {}
        for key in order:
            by_address.setdefault(entries[key], key)
        # An address suppressed before (by hand, another batch, another
        # listener) conflicts, and RETURNING leaves it out.
        new: set[int] = set()
        now = self.sql.timestamp(self.now)
        # By address, for the reason _insert sorts its rows.
        for part in _chunks(sorted(by_address.items()), ROWS_PER_STATEMENT):
            params = [
                value
                for address, key in part
                for value in (address, now, *_ledger_values(key, won[key], evidence[key]))
            ]
            self.cursor.execute(self.sql.insert_suppressions(len(part)), params)
            new.update(inserted for (inserted,) in self.cursor.fetchall())
        if new and log.isEnabledFor(logging.INFO):
            self._log_suppressed(sorted(new), by_address)
        return {by_address[address_id] for address_id in new}

    def _log_suppressed(self, new: list[int], by_address: dict[int, _Key]) -> None:
        """One line per newly suppressed address, masked. Its text is read
        only for this line, so a group logged at warning reads none."""
        canonical: dict[int, str] = {}
        for part in _chunks(new):
            self.cursor.execute(self.sql.canonicals(len(part)), part)
            canonical.update(self.cursor.fetchall())
        for address_id in new:
            log.info(
                "event=suppressed batch=%s address=%s",
                by_address[address_id][0],
                scheme.mask(canonical[address_id]),
            )

    def _tally(self, batch_ids: list[str | None], outcomes: list[list[Outcome]]) -> None:
        """Add the group's invalid and repeated proofs to their tally rows."""
        tallies: dict[_TallyKey, list[int]] = {}
        for request, batch_id, found in zip(self.requests, batch_ids, outcomes, strict=True):
            if batch_id is None or len(found) == found.count(Outcome.ACCEPTED):
                continue
            # From the float the edge took: no datetime per request.
            minute = int(request.received // 60) * 60
            key = (batch_id, minute, request.channel[:8], request.peer[:64])
            counts = tallies.setdefault(key, [0, 0])
            counts[0] += found.count(Outcome.INVALID)
            counts[1] += found.count(Outcome.DUPLICATE)
        rows = sorted(tallies.items())  # one lock order for concurrent listeners
        for part in _chunks(rows, ROWS_PER_STATEMENT):
            params = [
                value
                for (batch_id, minute, channel, peer), (invalid, duplicate) in part
                for value in (
                    batch_id,
                    self.sql.timestamp(datetime.fromtimestamp(minute, UTC)),
                    channel,
                    peer,
                    invalid,
                    duplicate,
                )
            ]
            self.cursor.execute(self.sql.add_tallies(len(part)), params)


def _wanted(
    batch_ids: list[str | None], decoded: list[list[bytes | None]]
) -> dict[str, set[bytes]]:
    wanted: dict[str, set[bytes]] = {}
    for batch_id, proofs in zip(batch_ids, decoded, strict=True):
        if batch_id is not None:
            wanted.setdefault(batch_id, set()).update(p for p in proofs if p is not None)
    return wanted


def _chunks(items: list[T], size: int = _LOOKUP_CHUNK) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ThreadRecorder:
    """A GroupRecorder running an Ingestor in this process, off the loop."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor

    async def record_group(self, requests: Sequence[Request]) -> list[PingResult]:
        return await asyncio.to_thread(self.ingestor.record_group, requests)
