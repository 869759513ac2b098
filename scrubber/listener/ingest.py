"""Where a ping is verified and stored: the one write path of the listener.

``Ingestor.record_group`` takes any number of ping requests and, in ONE
transaction, looks their proofs up in the proof index (``batch_entries``),
decides each proof's outcome, stores a ``Ping`` row per proof and suppresses
the address of every accepted proof. ``GroupCommitter`` feeds it from the
event loop: concurrent requests queue up while a transaction commits and go
into the next one together (group commit); each request's future resolves
only after its transaction has committed. ``scrubber listen`` runs the
Ingestor in its writer process (writer.py); the library API runs it here.

Exactly once, even with several listener processes: on SQLite the group's
transaction holds the one write lock (BEGIN IMMEDIATE) from its checks to its
commit, so the checks are exact; on PostgreSQL the partial unique index
``uq_pings_accepted`` (one accepted ping per batch and proof) and the
primary key of ``suppressions`` decide, through ON CONFLICT DO NOTHING, and a
ping that lost the race to another listener is stored as a duplicate.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import logging
import re
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import select

from scrubber import scheme
from scrubber.errors import ScrubberError, StoreError, StoreUnavailable
from scrubber.store import Store
from scrubber.store.models import Batch
from scrubber.store.types import utcnow

log = logging.getLogger("scrubber.listener")

PROOF_LEN = 16
MAX_PROOFS = 1000  # per request, both channels
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PROOF_TEXT = re.compile(r"[A-Za-z0-9_-]{22}")  # 16 bytes, base64url without padding
_LOOKUP_CHUNK = 500  # proofs per IN (...) query
T = TypeVar("T")


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    UNKNOWN_BATCH = "unknown-batch"
    RATE_LIMITED = "rate-limited"


OUTCOMES = tuple(outcome.value for outcome in Outcome)


@dataclass(slots=True)  # not frozen: a frozen __init__ costs the hot path
class PingRequest:
    """Proofs sent for one token in one HTTP request or one SMTP message."""

    token: str
    proofs: Sequence[str]
    channel: str
    peer: str
    received_at: datetime = field(default_factory=utcnow)
    # Set for requests refused at the edge: every proof is stored with it.
    forced: Outcome | None = None


@dataclass(frozen=True)
class PingResult:
    batch_id: str | None
    outcomes: list[Outcome]
    suppressed: int  # addresses this request newly suppressed

    @property
    def known_batch(self) -> bool:
        return self.batch_id is not None

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for outcome in self.outcomes:
            counts[outcome.value] += 1
        return counts


class GroupRecorder(Protocol):
    """Stores a group of requests in one transaction and answers after the
    commit: the writer process, or an Ingestor in a thread (ThreadRecorder)."""

    async def record_group(self, requests: Sequence[PingRequest]) -> list[PingResult]: ...


class CommitObserver(Protocol):
    """Told about every committed group (metrics implement it)."""

    def committed(self, seconds: float, requests: Sequence[PingRequest]) -> None: ...

    def outcome(self, channel: str, outcome: Outcome, count: int) -> None: ...

    def failed(self, requests: int) -> None: ...


def decode_proof(value: str) -> bytes | None:
    """The 16 proof bytes, or None when the text is not a well-formed proof."""
    if _PROOF_TEXT.fullmatch(value):  # the exact form nearly every ping uses
        return base64.urlsafe_b64decode(value + "==")
    try:
        raw = scheme.from_b64url(value)
    except ValueError:
        return None
    return raw if len(raw) == PROOF_LEN else None


def clean_token(token: str) -> str | None:
    return token if _TOKEN.fullmatch(token) else None


_PING_COLUMNS = (
    "token, batch_id, proof, outcome, channel, peer, address_id, received_at, committed_at"
)
_ROWS_PER_STATEMENT = 500  # multi-row VALUES: well under SQLite's 32,766 parameters


@dataclass(frozen=True)
class _Sql:
    """The group commit's statements, as plain SQL on the driver's connection.

    Through SQLAlchemy Core the statements cost several times SQLite's own
    work for a group of pings (expanding IN lists, type processing, RETURNING
    batches; docs/performance.md, listen_http), and that Python work holds
    the GIL the event loop needs. The same text serves SQLite and PostgreSQL
    but for the parameter marker and how a timestamp is passed. Only
    parameter markers are ever formatted into the text (hence the noqa
    S608 marks); every value is bound.
    """

    mark: str  # the driver's parameter marker: "?" (sqlite3) or "%s" (psycopg)
    sqlite: bool

    @classmethod
    def for_dialect(cls, name: str) -> _Sql:
        if name not in ("sqlite", "postgresql"):
            raise StoreError(f"the listener does not support the {name} database")
        return cls("?" if name == "sqlite" else "%s", name == "sqlite")

    def timestamp(self, value: datetime) -> object:
        """A bind value for a UTCDateTime column."""
        if self.sqlite:
            # The text SQLAlchemy's SQLite DATETIME writes, so the ORM reads it alike.
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    def _marks(self, count: int) -> str:
        return ", ".join([self.mark] * count)

    def token(self) -> str:
        return f"SELECT id FROM batches WHERE token = {self.mark}"  # noqa: S608

    def entries(self, proofs: int) -> str:
        """Proofs found in a batch's index, with their address and any accepted ping."""
        return (
            "SELECT e.proof, e.address_id, a.canonical, p.id FROM batch_entries e "  # noqa: S608
            "JOIN addresses a ON a.id = e.address_id "
            "LEFT JOIN pings p ON p.batch_id = e.batch_id AND p.proof = e.proof "
            "AND p.outcome = 'accepted' "
            f"WHERE e.batch_id = {self.mark} AND e.proof IN ({self._marks(proofs)})"
        )

    def insert_pings(self) -> str:
        return f"INSERT INTO pings ({_PING_COLUMNS}) VALUES ({self._marks(9)})"  # noqa: S608

    def insert_accepted(self, rows: int) -> str:
        """Accepted pings; a proof another listener accepted first is skipped
        (the partial unique index), so only the winners come back."""
        values = ", ".join([f"({self._marks(9)})"] * rows)
        return (
            f"INSERT INTO pings ({_PING_COLUMNS}) VALUES {values} "  # noqa: S608
            "ON CONFLICT (batch_id, proof) WHERE outcome = 'accepted' DO NOTHING "
            "RETURNING id, batch_id, proof"
        )

    def insert_suppressions(self, rows: int) -> str:
        values = ", ".join([f"({self._marks(5)})"] * rows)
        return (
            "INSERT INTO suppressions (address_id, suppressed_at, source, batch_id, ping_id) "  # noqa: S608
            f"VALUES {values} ON CONFLICT (address_id) DO NOTHING RETURNING address_id"
        )


class Ingestor:
    """Verifies and stores pings. Thread-safe; the sync API others may use.

    ``record(token, proofs)`` stores one request and returns its outcomes;
    ``record_group(requests)`` stores many in one transaction.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._tokens: dict[str, str] = {}  # token -> batch id; batches never change token
        self._sql = _Sql.for_dialect(store.engine.dialect.name)

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

    def record_group(self, requests: Sequence[PingRequest]) -> list[PingResult]:
        """Verify and store all requests in one transaction; committed on return."""
        with self.store.write_connection() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            cursor = driver.cursor()
            try:
                return _Group(cursor, self._sql, self._tokens, requests).run()
            finally:
                cursor.close()


# A stored ping as bind values, in _PING_COLUMNS order.
_OUTCOME, _ADDRESS = 3, 6


@dataclass
class _Row:
    request: int
    key: tuple[str, bytes] | None  # set while the row is an accepted proof
    values: list[Any]


class _Group:
    """One group commit: decide every outcome, then insert in bulk."""

    def __init__(
        self,
        cursor: Any,  # the driver's (PEP 249) cursor, inside the write transaction
        sql: _Sql,
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
        wanted = _wanted(self.requests, batch_ids, decoded)
        entries, taken = self._entries(wanted)
        rows = self._decide(batch_ids, decoded, entries, taken)
        won = self._insert(rows)
        order = [row.key for row in rows if row.key is not None and row.key in won]
        suppressed = self._suppress(won, entries, order)
        return self._results(batch_ids, rows, suppressed)

    def _batch_id(self, token: str) -> str | None:
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

    def _entries(
        self, wanted: dict[str, set[bytes]]
    ) -> tuple[dict[tuple[str, bytes], tuple[int, str]], set[tuple[str, bytes]]]:
        """The proofs found in the index, (batch, proof) -> (address id, canonical),
        and those among them already accepted before."""
        found: dict[tuple[str, bytes], tuple[int, str]] = {}
        taken: set[tuple[str, bytes]] = set()
        for batch_id, proofs in wanted.items():
            for chunk in _chunks(sorted(proofs)):
                self.cursor.execute(self.sql.entries(len(chunk)), (batch_id, *chunk))
                for proof, address_id, canonical, ping_id in self.cursor.fetchall():
                    key = (batch_id, bytes(proof))
                    found[key] = (address_id, canonical)
                    if ping_id is not None:
                        taken.add(key)
        return found, taken

    def _decide(
        self,
        batch_ids: list[str | None],
        decoded: list[list[bytes | None]],
        entries: dict[tuple[str, bytes], tuple[int, str]],
        taken: set[tuple[str, bytes]],
    ) -> list[_Row]:
        rows: list[_Row] = []
        committed_at = self.sql.timestamp(self.now)
        for index, (request, batch_id) in enumerate(zip(self.requests, batch_ids, strict=True)):
            token = clean_token(request.token) or "<invalid>"
            received_at = self.sql.timestamp(request.received_at)
            for proof in decoded[index]:
                key = (batch_id, proof) if batch_id and proof else None
                outcome = _outcome(request.forced, batch_id, key, entries, taken)
                accepted = outcome is Outcome.ACCEPTED
                if accepted:
                    assert key is not None
                    taken.add(key)
                values = [
                    token,
                    batch_id,
                    proof,
                    outcome.value,
                    request.channel[:8],
                    request.peer[:64],
                    entries[key][0] if accepted and key else None,
                    received_at,
                    committed_at,
                ]
                rows.append(_Row(index, key if accepted else None, values))
        return rows

    def _insert(self, rows: list[_Row]) -> dict[tuple[str, bytes], int]:
        """Store all rows; returns ping id per accepted (batch, proof) this group won."""
        plain = [row.values for row in rows if row.key is None]
        accepted = [row for row in rows if row.key is not None]
        won: dict[tuple[str, bytes], int] = {}
        for chunk in _chunks(accepted, _ROWS_PER_STATEMENT):
            params = [value for row in chunk for value in row.values]
            self.cursor.execute(self.sql.insert_accepted(len(chunk)), params)
            won.update(((b, bytes(p)), i) for i, b, p in self.cursor.fetchall())
        for row in accepted:
            assert row.key is not None
            if row.key not in won:
                # Another listener committed this proof first: a duplicate here.
                row.values[_OUTCOME] = Outcome.DUPLICATE.value
                row.values[_ADDRESS] = None
                row.key = None
                plain.append(row.values)
        if plain:
            self.cursor.executemany(self.sql.insert_pings(), plain)
        return won

    def _suppress(
        self,
        won: dict[tuple[str, bytes], int],
        entries: dict[tuple[str, bytes], tuple[int, str]],
        order: list[tuple[str, bytes]],
    ) -> set[tuple[str, bytes]]:
        """Suppress the addresses of accepted proofs (the first ping of an
        address in the group gets the credit); returns the keys that did."""
        by_address: dict[int, tuple[str, bytes]] = {}
        for key in order:
            by_address.setdefault(entries[key][0], key)
        # An address suppressed before (by hand, another batch, another
        # listener) conflicts, and RETURNING leaves it out.
        new: set[int] = set()
        now = self.sql.timestamp(self.now)
        for part in _chunks(list(by_address.items()), _ROWS_PER_STATEMENT):
            params = [
                value for address, key in part for value in (address, now, "ping", key[0], won[key])
            ]
            self.cursor.execute(self.sql.insert_suppressions(len(part)), params)
            new.update(inserted for (inserted,) in self.cursor.fetchall())
        for address_id in sorted(new):
            key = by_address[address_id]
            log.info(
                "event=suppressed batch=%s address=%s",
                key[0],
                scheme.mask(entries[key][1]),
            )
        return {by_address[address_id] for address_id in new}

    def _results(
        self,
        batch_ids: list[str | None],
        rows: list[_Row],
        suppressed: set[tuple[str, bytes]],
    ) -> list[PingResult]:
        outcomes: list[list[Outcome]] = [[] for _ in self.requests]
        newly = [0] * len(self.requests)
        for row in rows:
            outcomes[row.request].append(Outcome(row.values[_OUTCOME]))
            if row.key is not None and row.key in suppressed:
                newly[row.request] += 1
        return [
            PingResult(batch_id, found, count)
            for batch_id, found, count in zip(batch_ids, outcomes, newly, strict=True)
        ]


def _outcome(
    forced: Outcome | None,
    batch_id: str | None,
    key: tuple[str, bytes] | None,
    entries: dict[tuple[str, bytes], tuple[int, str]],
    taken: set[tuple[str, bytes]],
) -> Outcome:
    if forced is not None:
        return forced
    if batch_id is None:
        return Outcome.UNKNOWN_BATCH
    if key is None or key not in entries:
        return Outcome.INVALID
    return Outcome.DUPLICATE if key in taken else Outcome.ACCEPTED


def _wanted(
    requests: Sequence[PingRequest],
    batch_ids: list[str | None],
    decoded: list[list[bytes | None]],
) -> dict[str, set[bytes]]:
    wanted: dict[str, set[bytes]] = {}
    for request, batch_id, proofs in zip(requests, batch_ids, decoded, strict=True):
        if batch_id is not None and request.forced is None:
            wanted.setdefault(batch_id, set()).update(p for p in proofs if p is not None)
    return wanted


def _chunks(items: list[T], size: int = _LOOKUP_CHUNK) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Overloaded(StoreUnavailable):
    """Too many pings wait for the database; the sender should retry later."""


@dataclass
class _Pending:
    request: PingRequest
    waiter: asyncio.Future[PingResult] | None = None  # None: nobody waits (record_later)


class GroupCommitter:
    """Commits queued requests many per transaction, from the event loop.

    One task takes whatever is queued, hands it to the recorder (the writer
    process, or an Ingestor in a thread), and resolves each request's future
    when the recorder answers, that is after the commit; a failed group
    resolves with StoreUnavailable, which the edges answer 451/503, never
    success. While a group commits, new requests queue up for the next one;
    with ``max_inflight`` above 1, that next group is handed over before the
    first is answered (the writer process keeps their order). Everything
    runs on the loop: no thread shares its GIL and no wake-up
    crosses threads (docs/performance.md, listen_http).
    """

    def __init__(
        self,
        recorder: GroupRecorder,
        *,
        observer: CommitObserver | None = None,
        max_group: int = 1000,
        max_group_proofs: int = 20_000,
        max_pending: int = 20_000,
        max_inflight: int = 1,
    ) -> None:
        self.recorder = recorder
        self.observer = observer
        self.max_group = max_group
        self.max_group_proofs = max_group_proofs
        self.max_pending = max_pending
        self.max_inflight = max_inflight  # groups handed to the recorder at once
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight = 0
        self._groups: set[asyncio.Task[None]] = set()  # strong references to them
        self._closed = False

    def start(self) -> None:
        """Start committing; call from the event loop that will send pings."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-committer")

    async def ping(self, request: PingRequest) -> PingResult:
        """Queue the request and wait until its transaction has committed."""
        if self._closed:
            raise StoreUnavailable("the listener is shutting down")
        if len(self._queue) >= self.max_pending:
            raise Overloaded("too many pings waiting for the database")
        waiter: asyncio.Future[PingResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(request, waiter))
        self._wake.set()
        return await waiter

    def record_later(self, request: PingRequest) -> bool:
        """Store a refused request's proofs without waiting; dropped when overloaded."""
        if self._closed or len(self._queue) >= self.max_pending // 2:
            return False
        self._queue.append(_Pending(request))
        self._wake.set()
        return True

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            if not self._queue or self._inflight >= self.max_inflight:
                if self._closed and not self._queue and not self._inflight:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._send(self._take()))
            self._groups.add(task)
            task.add_done_callback(self._groups.discard)

    async def _send(self, group: list[_Pending]) -> None:
        try:
            await self._commit(group)
        finally:
            self._inflight -= 1
            self._wake.set()

    def _take(self) -> list[_Pending]:
        """What is queued now, bounded in requests and proofs."""
        group = [self._queue.popleft()]
        proofs = len(group[0].request.proofs)
        while self._queue and len(group) < self.max_group and proofs < self.max_group_proofs:
            item = self._queue.popleft()
            group.append(item)
            proofs += len(item.request.proofs)
        return group

    async def _commit(self, group: list[_Pending]) -> None:
        started = time.perf_counter()
        requests = [p.request for p in group]
        try:
            results = await self.recorder.record_group(requests)
        except StoreUnavailable as error:
            self._fail(group, error)
            return
        except ScrubberError as error:
            if len(group) > 1:
                # One bad request must not fail the others: retry one by one.
                for pending in group:
                    await self._commit([pending])
                return
            self._fail(group, error)
            return
        except Exception as error:  # keep committing, but say what broke
            log.exception("event=writer-error")
            self._fail(group, StoreError(f"cannot store pings: {error}"))
            return
        self._done(group, results, time.perf_counter() - started)

    def _done(self, group: list[_Pending], results: list[PingResult], seconds: float) -> None:
        if self.observer is not None:
            self.observer.committed(seconds, [p.request for p in group])
            # Counted per group, not per request: one increment per kind.
            counts = Counter(
                (pending.request.channel, outcome)
                for pending, result in zip(group, results, strict=True)
                for outcome in result.outcomes
            )
            for (channel, outcome), count in counts.items():
                self.observer.outcome(channel, outcome, count)
        log.debug("event=commit requests=%d ms=%.1f", len(group), seconds * 1000)
        for pending, result in zip(group, results, strict=True):
            if pending.waiter is not None and not pending.waiter.done():  # done: cancelled
                pending.waiter.set_result(result)

    def _fail(self, group: list[_Pending], error: ScrubberError) -> None:
        log.warning("event=commit-failed requests=%d error=%r", len(group), error.message)
        if self.observer is not None:
            self.observer.failed(len(group))
        for pending in group:
            if pending.waiter is not None and not pending.waiter.done():
                pending.waiter.set_exception(error)


class ThreadRecorder:
    """A GroupRecorder running an Ingestor in this process, off the loop."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor

    async def record_group(self, requests: Sequence[PingRequest]) -> list[PingResult]:
        return await asyncio.to_thread(self.ingestor.record_group, requests)
