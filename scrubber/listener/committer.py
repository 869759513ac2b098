"""Where a ping is queued: the group committer, on the event loop.

Each edge hands its request to ``GroupCommitter.ping`` and awaits the
answer; the committer groups whatever is queued and hands each group to a
``GroupRecorder`` (the writer process, writer.py, or a ``ThreadRecorder``),
which answers only after the group's transaction committed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from scrubber.errors import Overloaded, ScrubberError, StoreError, StoreUnavailable
from scrubber.listener.ping import Outcome, PingResult, Request

log = logging.getLogger("scrubber.listener")


class GroupRecorder(Protocol):
    """Stores a group of requests in one transaction and answers after the
    commit: the writer process, or an Ingestor in a thread (ThreadRecorder)."""

    async def record_group(self, requests: Sequence[Request]) -> list[PingResult]: ...


class CommitObserver(Protocol):
    """Told about every committed group (metrics implement it)."""

    def committed(self, seconds: float, requests: Sequence[Request]) -> None: ...

    def outcome(self, channel: str, outcome: Outcome, count: int) -> None: ...

    def failed(self, requests: int) -> None: ...


@dataclass
class _Pending:
    request: Request
    waiter: asyncio.Future[PingResult]


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

    Two lanes: requests of suspect clients (ratelimit.py: they sent
    worthless proofs lately, or more than a registrant's handful at once)
    wait in a second queue, bounded in proofs, and go to the recorder in
    groups of their own, never in a group with clean requests: at most one
    suspect group is in flight at a time, of at most
    ``max_group_suspect_proofs``, and while one is, the other slot (with
    ``max_inflight`` 2, as ``scrubber listen`` runs) is free for clean
    requests; when both lanes wait, they take turns. So a clean request
    waits behind at most one small suspect group, however many forged
    proofs are queued. The suspect lane is served smallest request first
    (first come, first served among equals), so a suspect client's small
    request is not queued behind others' 1,000-proof ones.
    """

    def __init__(
        self,
        recorder: GroupRecorder,
        *,
        observer: CommitObserver | None = None,
        max_group: int = 1000,
        max_group_proofs: int = 20_000,
        max_pending: int = 20_000,
        max_suspect_proofs: int = 20_000,
        max_group_suspect_proofs: int = 1_000,
        max_inflight: int = 1,
    ) -> None:
        self.recorder = recorder
        self.observer = observer
        self.max_group = max_group
        self.max_group_proofs = max_group_proofs
        self.max_pending = max_pending  # clean requests queued
        self.max_suspect_proofs = max_suspect_proofs  # suspect proofs queued
        self.max_group_suspect_proofs = max_group_suspect_proofs
        self.max_inflight = max_inflight  # groups handed to the recorder at once
        self._queue: deque[_Pending] = deque()
        # Smallest first: (proofs, arrival, request).
        self._suspects: list[tuple[int, int, _Pending]] = []
        self._arrivals = itertools.count()
        self._suspect_proofs = 0
        self._suspect_inflight = False  # a suspect group is with the recorder
        self._suspects_next = False  # both lanes waiting: the suspects' turn
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight = 0
        self._groups: set[asyncio.Task[None]] = set()  # strong references to them
        self._closed = False

    def start(self) -> None:
        """Start committing; call from the event loop that will send pings."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-committer")

    async def ping(self, request: Request, *, suspect: bool = False) -> PingResult:
        """Queue the request and wait until its transaction has committed."""
        if self._closed:
            raise StoreUnavailable("the listener is shutting down")
        waiter: asyncio.Future[PingResult] = asyncio.get_running_loop().create_future()
        if suspect:
            if self._suspect_proofs + len(request.proofs) > self.max_suspect_proofs:
                raise Overloaded("too many suspect pings waiting")
            cost = len(request.proofs)
            heapq.heappush(self._suspects, (cost, next(self._arrivals), _Pending(request, waiter)))
            self._suspect_proofs += cost
        else:
            if len(self._queue) >= self.max_pending:
                raise Overloaded("too many pings waiting for the database")
            self._queue.append(_Pending(request, waiter))
        self._wake.set()
        return await waiter

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            group = self._next() if self._inflight < self.max_inflight else None
            if group is None:
                if self._closed and not self._queue and not self._suspects and not self._inflight:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._send(*group))
            self._groups.add(task)
            task.add_done_callback(self._groups.discard)

    async def _send(self, group: list[_Pending], suspect: bool) -> None:
        try:
            await self._commit(group)
        finally:
            self._inflight -= 1
            if suspect:
                self._suspect_inflight = False
            self._wake.set()

    def _next(self) -> tuple[list[_Pending], bool] | None:
        """The next group to hand over and whether it is the suspects', or
        None: clean requests first, but a suspect group whenever none is in
        flight and the last group handed over was clean."""
        suspects_ready = bool(self._suspects) and not self._suspect_inflight
        if self._queue and not (suspects_ready and self._suspects_next):
            self._suspects_next = suspects_ready
            return self._take_clean(), False
        if suspects_ready:
            self._suspects_next = False
            self._suspect_inflight = True
            return self._take_suspects(), True
        return None

    def _take_clean(self) -> list[_Pending]:
        """Clean requests in arrival order, bounded in requests and proofs."""
        group: list[_Pending] = []
        proofs = 0
        while self._queue and len(group) < self.max_group and proofs < self.max_group_proofs:
            item = self._queue.popleft()
            group.append(item)
            proofs += len(item.request.proofs)
        return group

    def _take_suspects(self) -> list[_Pending]:
        """Suspect requests, smallest first, up to ``max_group_suspect_proofs``
        (at least one request, whatever its size)."""
        group: list[_Pending] = []
        proofs = 0
        while self._suspects and len(group) < self.max_group:
            cost = self._suspects[0][0]
            if group and proofs + cost > self.max_group_suspect_proofs:
                break
            group.append(heapq.heappop(self._suspects)[2])
            self._suspect_proofs -= cost
            proofs += cost
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
            if not pending.waiter.done():  # done: cancelled
                pending.waiter.set_result(result)

    def _fail(self, group: list[_Pending], error: ScrubberError) -> None:
        log.warning("event=commit-failed requests=%d error=%r", len(group), error.message)
        if self.observer is not None:
            self.observer.failed(len(group))
        for pending in group:
            if not pending.waiter.done():
                pending.waiter.set_exception(error)
