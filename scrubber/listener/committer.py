"""Where a ping is queued: the group committer, on the event loop.

Each edge hands its request to ``GroupCommitter.ping`` and awaits the
answer; the committer groups whatever is queued and hands each group to a
``GroupRecorder`` (the writer process, writer.py, or a ``ThreadRecorder``),
which answers only after the group's transaction committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from scrubber.errors import ScrubberError, StoreError, StoreUnavailable
from scrubber.listener.ping import Outcome, PingRequest, PingResult

log = logging.getLogger("scrubber.listener")


class GroupRecorder(Protocol):
    """Stores a group of requests in one transaction and answers after the
    commit: the writer process, or an Ingestor in a thread (ThreadRecorder)."""

    async def record_group(self, requests: Sequence[PingRequest]) -> list[PingResult]: ...


class CommitObserver(Protocol):
    """Told about every committed group (metrics implement it)."""

    def committed(self, seconds: float, requests: Sequence[PingRequest]) -> None: ...

    def outcome(self, channel: str, outcome: Outcome, count: int) -> None: ...

    def failed(self, requests: int) -> None: ...


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
