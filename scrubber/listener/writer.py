"""The writer process: where the listener's pings are verified and stored.

The group committer hands each group of ping requests to this child process
over a pipe and the event loop wakes when the answer is readable; the answer
comes only after the group's transaction committed: a ping is still
acknowledged only once it is durable, and one process with one connection is
still the one writer path. Why a process: in the listener's own process the
database work and the event loop shared one GIL, and the loop spent a large
part of its time waiting for it (docs/performance.md, listen_http).

If the child dies, the groups in flight fail as StoreUnavailable (answered
503/451, never success) and the next group starts a new child.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import threading
from collections.abc import Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from scrubber.errors import ScrubberError, StoreError, StoreUnavailable
from scrubber.listener.ingest import Ingestor, Outcome, PingRequest, PingResult
from scrubber.store import Store

log = logging.getLogger("scrubber.listener")

START_TIMEOUT = 60.0  # seconds a new child gets to import and open the database
STOP_TIMEOUT = 30.0  # seconds it gets to finish its group and exit


class WriterProcess:
    """``record_group`` in a child process: a GroupRecorder for the committer.

    ``start`` and ``close`` block (run them in a thread); ``record_group``
    is awaited on the loop, one group at a time (the committer's way).
    """

    def __init__(self, url: str, *, lock_wait_ms: int, log_level: str) -> None:
        self.url = url
        self.lock_wait_ms = lock_wait_ms
        self.log_level = log_level
        self._lock = threading.Lock()  # start, close and clean-up: one at a time
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None

    def start(self) -> None:
        """Start the child and wait until it has opened the database."""
        with self._lock:
            self._spawn()

    async def record_group(self, requests: Sequence[PingRequest]) -> list[PingResult]:
        if self._conn is None:
            await asyncio.to_thread(self.start)
        assert self._conn is not None
        conn = self._conn
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[tuple[str, object]] = loop.create_future()
        fd = conn.fileno()
        loop.add_reader(fd, _receive, conn, reply)
        try:
            try:
                # A blocking write, but the child is waiting to read it.
                conn.send([_pack(r) for r in requests])
                kind, payload = await reply
            finally:
                loop.remove_reader(fd)
        except (EOFError, OSError):
            await asyncio.to_thread(self._discard)
            raise StoreUnavailable("the writer process stopped; pings not stored") from None
        except asyncio.CancelledError:
            # Its answer would be read as the next group's: start afresh.
            self._discard()
            raise
        if kind == "error":
            assert isinstance(payload, ScrubberError)
            raise payload
        assert isinstance(payload, list)
        return [_unpack_result(r) for r in payload]

    def close(self) -> None:
        """Let the child finish and exit (after the committer has drained)."""
        with self._lock:
            conn, process = self._conn, self._process
            self._conn = self._process = None
        if conn is not None:
            conn.close()  # the child reads EOF once it is idle
        if process is not None:
            process.join(STOP_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()

    def _spawn(self) -> None:
        # spawn: a clean interpreter, no copy of the loop's sockets or threads.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_child_main,
            args=(theirs, self.url, self.lock_wait_ms, self.log_level),
            name="scrubber-writer",
            daemon=True,
        )
        process.start()
        theirs.close()
        try:
            _handshake(ours, process)
        except BaseException:
            ours.close()  # a child that did not start leaves nothing behind
            if process.is_alive():
                process.kill()
            process.join()
            raise
        self._conn, self._process = ours, process
        log.info("event=writer-started pid=%s", process.pid)

    def _discard(self) -> None:
        """Forget a child whose pipe broke (or whose answer nobody waits for)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()  # a child still busy commits, reads EOF, exits
            if self._process is not None:
                self._process.join(1)
                if self._process.is_alive():
                    self._process.kill()
                    self._process.join()
                log.warning("event=writer-stopped exitcode=%s", self._process.exitcode)
            self._conn = self._process = None


def _receive(conn: Connection, reply: asyncio.Future[tuple[str, object]]) -> None:
    """The child's answer, once readable; it sends each answer whole."""
    if reply.done():
        return
    try:
        reply.set_result(conn.recv())
    except (EOFError, OSError) as error:
        reply.set_exception(error)


def _handshake(conn: Connection, process: BaseProcess) -> None:
    """Wait for the new child's "ready" (it opened the database), or its error."""
    if not conn.poll(START_TIMEOUT):
        raise StoreUnavailable("the writer process did not start in time")
    try:
        kind, payload = conn.recv()
    except EOFError:
        process.join()
        raise StoreUnavailable(f"the writer process failed (exit {process.exitcode})") from None
    if kind == "error":
        assert isinstance(payload, ScrubberError)
        raise payload


def _child_main(conn: Connection, url: str, lock_wait_ms: int, log_level: str) -> None:
    # The parent decides when to stop: it drains its queue, then closes the
    # pipe. A signal to the whole process group must not cut a commit short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from scrubber.listener.server import configure_logging, limit_lock_wait

    configure_logging(log_level)
    try:
        store = Store(url)
        limit_lock_wait(store, lock_wait_ms)
        ingestor = Ingestor(store)
    except ScrubberError as error:
        conn.send(("error", error))
        return
    conn.send(("ready", None))
    try:
        _serve(conn, ingestor)
    finally:
        store.close()


def _serve(conn: Connection, ingestor: Ingestor) -> None:
    while True:
        try:
            requests = conn.recv()
        except EOFError:  # the listener closed the pipe, or died
            return
        try:
            results = ingestor.record_group([_unpack(r) for r in requests])
            reply: tuple[str, object] = ("ok", [_pack_result(r) for r in results])
        except ScrubberError as error:
            reply = ("error", error)
        except Exception as error:  # keep serving, but say what broke
            log.exception("event=writer-error")
            reply = ("error", StoreError(f"cannot store pings: {error}"))
        try:
            conn.send(reply)
        except OSError:  # the listener is gone; what was committed stays
            return


# Plain tuples cross the pipe: they pickle several times faster than the
# dataclasses, and the pickling runs on the listener's busy interpreter.
_Packed = tuple[str, Sequence[str], str, str, datetime, str | None]
_PackedResult = tuple[str | None, list[str], int]
_OUTCOMES = {outcome.value: outcome for outcome in Outcome}


def _pack(request: PingRequest) -> _Packed:
    forced = request.forced.value if request.forced is not None else None
    return (
        request.token,
        request.proofs,
        request.channel,
        request.peer,
        request.received_at,
        forced,
    )


def _unpack(packed: _Packed) -> PingRequest:
    token, proofs, channel, peer, received_at, forced = packed
    return PingRequest(
        token, proofs, channel, peer, received_at, _OUTCOMES[forced] if forced else None
    )


def _pack_result(result: PingResult) -> _PackedResult:
    return (result.batch_id, [outcome.value for outcome in result.outcomes], result.suppressed)


def _unpack_result(packed: _PackedResult) -> PingResult:
    batch_id, outcomes, suppressed = packed
    return PingResult(batch_id, [_OUTCOMES[value] for value in outcomes], suppressed)
