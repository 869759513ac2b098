"""The writer process: where the listener's pings are verified and stored.

The group committer hands each group of ping requests to this child process
over a socket; the child answers each group only after its transaction
committed, so a ping is still acknowledged only once it is durable, and one
process with one connection is still the one writer path. Why a process: in
the listener's own process the database work and the event loop shared one
GIL, and the loop spent a large part of its time waiting for it
(docs/performance.md, listen_http).

Groups are pipelined: the loop may send the next group while the child
commits the last one, and answers come back in order. The loop's end of the
socket is an asyncio stream, so sending never blocks the loop, whatever the
child is doing (a locked database makes it wait up to the lock timeout).
Each message is a 4-byte big-endian length, then a pickle.

If the child dies, the groups in flight fail as StoreUnavailable (answered
503/451, never success) and the next group starts a new child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import signal
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from typing import IO, Any, cast

from scrubber.errors import ScrubberError, StoreError, StoreUnavailable
from scrubber.listener.ingest import Ingestor, Outcome, PingRequest, PingResult
from scrubber.store import Store

log = logging.getLogger("scrubber.listener")

START_TIMEOUT = 60.0  # seconds a new child gets to import and open the database
STOP_TIMEOUT = 30.0  # seconds it gets to finish its group and exit
_LENGTH = struct.Struct("!I")  # the length prefix of every message


class WriterProcess:
    """``record_group`` in a child process: a GroupRecorder for the committer.

    ``start`` blocks (run it in a thread); ``record_group`` and ``close``
    are awaited on the loop.
    """

    def __init__(self, url: str, *, lock_wait_ms: int, log_level: str) -> None:
        self.url = url
        self.lock_wait_ms = lock_wait_ms
        self.log_level = log_level
        self._lock = threading.Lock()  # start and reap run in threads
        self._child: _Child | None = None
        self._channel: _Channel | None = None
        self._opening = asyncio.Lock()  # one new child, however many groups wait
        self._reaper: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the child, if none runs, and wait until it has opened the database."""
        with self._lock:
            if self._child is None:
                self._child = _spawn(self.url, self.lock_wait_ms, self.log_level)

    async def record_group(self, requests: Sequence[PingRequest]) -> list[PingResult]:
        channel = await self._open()
        try:
            kind, payload = await channel.call([_pack(r) for r in requests])
        except _ChannelClosed:
            await self._forget(channel)
            raise StoreUnavailable("the writer process stopped; pings not stored") from None
        if kind == "error":
            assert isinstance(payload, ScrubberError)
            raise payload
        assert isinstance(payload, list)
        return [_unpack_result(r) for r in payload]

    async def close(self) -> None:
        """Let the child finish and exit (after the committer has drained)."""
        if self._reaper is not None:
            await self._reaper
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()  # the child reads EOF once it is idle
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            await asyncio.to_thread(child.stop, STOP_TIMEOUT)

    async def _open(self) -> _Channel:
        async with self._opening:
            if self._channel is not None and self._channel.closed:
                await self._forget(self._channel)
            if self._channel is None:
                await asyncio.to_thread(self.start)
                assert self._child is not None
                self._channel = await _Channel.open(self._child, self._lost)
            return self._channel

    def _lost(self, channel: _Channel) -> None:
        # Reaped and logged now, not when the next group finds out.
        self._reaper = asyncio.get_running_loop().create_task(self._forget(channel))

    async def _forget(self, channel: _Channel) -> None:
        """Reap a child whose socket closed (it died), once."""
        if self._channel is channel:
            self._channel = None
        with self._lock:
            if self._child is not channel.child:
                return  # already reaped
            self._child = None
        await asyncio.to_thread(channel.child.stop, 1.0)
        log.warning("event=writer-stopped exitcode=%s", channel.child.process.exitcode)


class _ChannelClosed(Exception):
    """The child's socket closed before its answer came."""


class _Child:
    """A started writer process and the listener's end of its socket."""

    def __init__(self, process: BaseProcess, sock: socket.socket) -> None:
        self.process = process
        self.sock = sock

    def stop(self, timeout: float) -> None:
        """Wait for the child to exit (it does once its socket is closed); kill it after timeout."""
        self.sock.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class _Channel:
    """The loop's end of a child's socket: messages out, answers back in order."""

    def __init__(
        self,
        child: _Child,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_lost: Callable[[_Channel], None],
    ) -> None:
        self.child = child
        self.closed = False
        self._on_lost = on_lost
        self._reader = reader
        self._writer = writer
        self._answers: deque[asyncio.Future[Any]] = deque()
        self._task = asyncio.get_running_loop().create_task(self._read_answers())

    @classmethod
    async def open(cls, child: _Child, on_lost: Callable[[_Channel], None]) -> _Channel:
        # The stream owns a duplicate, so each side closes only its own socket;
        # the child sees end of stream once both are closed.
        reader, writer = await asyncio.open_connection(sock=child.sock.dup())
        return cls(child, reader, writer, on_lost)

    async def call(self, message: object) -> Any:
        """Send one message; its answer, or _ChannelClosed if the child went away."""
        if self.closed:
            raise _ChannelClosed
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._answers.append(answer)
        self._writer.write(_frame(message))  # buffered: never blocks the loop
        # A cancelled caller's answer still arrives, is dropped, and the
        # next caller gets its own: the order of answers is the order sent.
        return await answer

    async def close(self) -> None:
        self._writer.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read_answers(self) -> None:
        try:
            while True:
                (length,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
                answer = _load(await self._reader.readexactly(length))
                waiting = self._answers.popleft()
                if not waiting.done():
                    waiting.set_result(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            self._on_lost(self)  # the child died
        finally:
            self.closed = True
            self._writer.close()
            for waiting in self._answers:
                if not waiting.done():
                    waiting.set_exception(_ChannelClosed())
            self._answers.clear()


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _read_message(stream: IO[bytes]) -> object | None:
    """The next message from a blocking stream; None at end of stream."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    data = stream.read(length)
    if len(data) < length:
        return None
    return _load(data)


def _load(data: bytes) -> object:
    # Only the two ends of a socketpair made here ever write to it.
    return pickle.loads(data)  # noqa: S301


def _spawn(url: str, lock_wait_ms: int, log_level: str) -> _Child:
    """A new child that has opened the database, or an error and no child."""
    # spawn: a clean interpreter, no copy of the loop's sockets or threads.
    context = multiprocessing.get_context("spawn")
    ours, theirs = socket.socketpair()
    process = context.Process(
        target=_child_main,
        args=(theirs, url, lock_wait_ms, log_level),
        name="scrubber-writer",
        daemon=True,
    )
    try:
        process.start()
    finally:
        theirs.close()
    child = _Child(process, ours)
    try:
        _handshake(child)
    except BaseException:
        child.stop(0)  # a child that did not start leaves nothing behind
        raise
    log.info("event=writer-started pid=%s", process.pid)
    return child


def _handshake(child: _Child) -> None:
    """Wait for the new child's "ready" (it opened the database), or its error."""
    child.sock.settimeout(START_TIMEOUT)
    try:
        with child.sock.makefile("rb") as stream:
            message = _read_message(stream)
    except TimeoutError:
        raise StoreUnavailable("the writer process did not start in time") from None
    finally:
        child.sock.settimeout(None)
    if message is None:
        child.process.join()
        raise StoreUnavailable(f"the writer process failed (exit {child.process.exitcode})")
    kind, payload = cast(tuple[str, object], message)
    if kind == "error":
        assert isinstance(payload, ScrubberError)
        raise payload


def _child_main(sock: socket.socket, url: str, lock_wait_ms: int, log_level: str) -> None:
    # The parent decides when to stop: it drains its queue, then closes the
    # socket. A signal to the whole process group must not cut a commit short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from scrubber.listener.server import configure_logging, limit_lock_wait

    configure_logging(log_level)
    try:
        store = Store(url)
        limit_lock_wait(store, lock_wait_ms)
        ingestor = Ingestor(store)
    except ScrubberError as error:
        sock.sendall(_frame(("error", error)))
        return
    sock.sendall(_frame(("ready", None)))
    try:
        with sock.makefile("rb") as stream:
            _serve(stream, sock, ingestor)
    finally:
        store.close()


def _serve(stream: IO[bytes], sock: socket.socket, ingestor: Ingestor) -> None:
    while (requests := _read_message(stream)) is not None:  # None: the listener closed or died
        assert isinstance(requests, list)
        try:
            results = ingestor.record_group([_unpack(r) for r in requests])
            reply: tuple[str, object] = ("ok", [_pack_result(r) for r in results])
        except ScrubberError as error:
            reply = ("error", error)
        except Exception as error:  # keep serving, but say what broke
            log.exception("event=writer-error")
            reply = ("error", StoreError(f"cannot store pings: {error}"))
        try:
            sock.sendall(_frame(reply))
        except OSError:  # the listener is gone; what was committed stays
            return


# Plain tuples cross the socket: they pickle several times faster than the
# dataclasses, and the pickling runs on the listener's busy interpreter. The
# time goes as a POSIX timestamp: a datetime costs 1 us a ping to pickle, and
# a float carries the microseconds exactly for centuries either side of now.
_Packed = tuple[str, Sequence[str], str, str, float, str | None]
_PackedResult = tuple[str | None, list[str], int]
_OUTCOMES = {outcome.value: outcome for outcome in Outcome}


def _pack(request: PingRequest) -> _Packed:
    forced = request.forced.value if request.forced is not None else None
    return (
        request.token,
        request.proofs,
        request.channel,
        request.peer,
        request.received_at.timestamp(),
        forced,
    )


def _unpack(packed: _Packed) -> PingRequest:
    token, proofs, channel, peer, received_at, forced = packed
    return PingRequest(
        token,
        proofs,
        channel,
        peer,
        datetime.fromtimestamp(received_at, UTC),
        _OUTCOMES[forced] if forced else None,
    )


def _pack_result(result: PingResult) -> _PackedResult:
    return (result.batch_id, [outcome.value for outcome in result.outcomes], result.suppressed)


def _unpack_result(packed: _PackedResult) -> PingResult:
    batch_id, outcomes, suppressed = packed
    return PingResult(batch_id, [_OUTCOMES[value] for value in outcomes], suppressed)
