"""Where a ping crosses into the writer process: ``WriterProcess``.

The group committer hands each group of ping requests to this child process
(child.py) over a pipe; the child answers each group only after its
transaction committed, so a ping is still acknowledged only once it is
durable, and one process with one connection is still the one writer path.
Why a process: in the listener's own process the database work and the
event loop shared one GIL, and the loop spent a large part of its time
waiting for it (docs/performance.md, listen_http).

Groups are pipelined: the loop may send the next group while the child
commits the last one, and answers come back in order (channel.py).

If the child dies, the groups in flight fail as StoreUnavailable (answered
503/451, never success) and the next group starts a new child.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import socket
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import cast

from scrubber.errors import ScrubberError, StoreUnavailable
from scrubber.listener import child as child_process
from scrubber.listener.channel import Channel, ChannelClosed, pack, unpack_result
from scrubber.listener.ping import PingResult, Request

log = logging.getLogger("scrubber.listener")

START_TIMEOUT = 60.0  # seconds a new child gets to import and open the database
STOP_TIMEOUT = 30.0  # seconds it gets to finish its group and exit


class WriterProcess:
    """``record_group`` in a child process: a GroupRecorder for the committer.

    ``start`` blocks (run it in a thread); ``record_group`` and ``close``
    are awaited on the loop.
    """

    def __init__(
        self, url: str, *, lock_wait_ms: int, log_level: str, check_key: bytes = b""
    ) -> None:
        self.url = url
        self.check_key = check_key  # for unsubscribes' address checks (unsubscribe.check_key)
        self.lock_wait_ms = lock_wait_ms
        self.log_level = log_level
        self._lock = threading.Lock()  # start and reap run in threads
        self._child: _Child | None = None
        self._channel: Channel[_Child] | None = None
        self._opening = asyncio.Lock()  # one new child, however many groups wait
        self._reaper: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the child, if none runs, and wait until it has opened the database."""
        with self._lock:
            if self._child is None:
                self._child = _spawn(self.url, self.lock_wait_ms, self.log_level, self.check_key)

    async def record_group(self, requests: Sequence[Request]) -> list[PingResult]:
        channel = await self._open()
        try:
            kind, payload = await channel.call([pack(r) for r in requests])
        except ChannelClosed:
            await self._forget(channel)
            raise StoreUnavailable("the writer process stopped; pings not stored") from None
        if kind == "error":
            assert isinstance(payload, ScrubberError)
            raise payload
        assert isinstance(payload, list)
        return [unpack_result(r) for r in payload]

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

    async def _open(self) -> Channel[_Child]:
        async with self._opening:
            if self._channel is not None and self._channel.closed:
                await self._forget(self._channel)
            if self._channel is None:
                await asyncio.to_thread(self.start)
                assert self._child is not None
                self._channel = await self._child.channel(self._lost)
            return self._channel

    def _lost(self, channel: Channel[_Child]) -> None:
        # Reaped and logged now, not when the next group finds out.
        self._reaper = asyncio.get_running_loop().create_task(self._forget(channel))

    async def _forget(self, channel: Channel[_Child]) -> None:
        """Reap a child whose pipe closed (it died), once."""
        if self._channel is channel:
            self._channel = None
        with self._lock:
            if self._child is not channel.child:
                return  # already reaped
            self._child = None
        await asyncio.to_thread(channel.child.stop, 1.0)
        log.warning("event=writer-stopped exitcode=%s", channel.child.process.exitcode)


class _Child:
    """A started writer process and the listener's end of its pipe."""

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    async def channel(self, on_lost: Callable[[Channel[_Child]], None]) -> Channel[_Child]:
        """The loop's end of the pipe as an asyncio stream.

        The stream owns a duplicate, so each side closes only its own
        descriptor; the child sees end of stream once both are closed.
        """
        sock = socket.socket(fileno=os.dup(self.conn.fileno()))
        reader, writer = await asyncio.open_connection(sock=sock)
        return Channel(self, reader, writer, on_lost)

    def stop(self, timeout: float) -> None:
        """Wait for the child to exit (it does once its pipe is closed); kill it after timeout."""
        self.conn.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _spawn(url: str, lock_wait_ms: int, log_level: str, check_key: bytes) -> _Child:
    """A new child that has opened the database, or an error and no child."""
    # spawn: a clean interpreter, no copy of the loop's sockets or threads.
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()  # on POSIX a socketpair, whatever the context
    process = context.Process(
        target=child_process.main,
        args=(theirs, url, lock_wait_ms, log_level, check_key),
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
    if not child.conn.poll(START_TIMEOUT):
        raise StoreUnavailable("the writer process did not start in time")
    try:
        kind, payload = cast(tuple[str, object], child.conn.recv())
    except (EOFError, OSError):
        child.process.join()
        raise StoreUnavailable(
            f"the writer process failed (exit {child.process.exitcode})"
        ) from None
    if kind == "error":
        assert isinstance(payload, ScrubberError)
        raise payload
