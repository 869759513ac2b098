"""The wire between the loop and the writer process: framing and packing.

Each message is what ``multiprocessing.connection.Connection`` sends: a
4-byte signed big-endian length, then a pickle. The child's end of the
socket is such a Connection (child.py); the loop's end is an asyncio stream
(``Channel``), so sending never blocks the loop, whatever the child is
doing. Only the two ends of a pipe made by the listener ever write to it,
which is what makes unpickling safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from scrubber.listener.ping import Outcome, PingRequest, PingResult, Request, UnsubscribeRequest

_LENGTH = struct.Struct("!i")  # Connection's length prefix
_LONG_LENGTH = struct.Struct("!Q")  # ... after a length of -1, for 2 GiB and over
_LONG = -1
C = TypeVar("C")


class ChannelClosed(Exception):
    """The child's socket closed before its answer came."""


class Channel(Generic[C]):
    """The loop's end of a child's socket: messages out, answers back in order."""

    def __init__(
        self,
        child: C,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_lost: Callable[[Channel[C]], None],
    ) -> None:
        self.child = child
        self.closed = False
        self._on_lost = on_lost
        self._reader = reader
        self._writer = writer
        self._answers: deque[asyncio.Future[Any]] = deque()
        self._task = asyncio.get_running_loop().create_task(self._read_answers())

    async def call(self, message: object) -> Any:
        """Send one message; its answer, or ChannelClosed if the child went away."""
        if self.closed:
            raise ChannelClosed
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._answers.append(answer)
        self._writer.write(frame(message))  # buffered: never blocks the loop
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
                answer = await _read(self._reader)
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
                    waiting.set_exception(ChannelClosed())
            self._answers.clear()


def frame(message: object) -> bytes:
    """One message as Connection.send_bytes frames it (groups stay far below 2 GiB)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def _read(reader: asyncio.StreamReader) -> object:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length == _LONG:
        (length,) = _LONG_LENGTH.unpack(await reader.readexactly(_LONG_LENGTH.size))
    # Only the two ends of a pipe made here ever write to it.
    return pickle.loads(await reader.readexactly(length))  # noqa: S301


# Plain tuples cross the socket: they pickle several times faster than the
# dataclasses, and the pickling runs on the listener's busy interpreter. The
# time goes as the request's POSIX timestamp, as the edge took it (a datetime
# costs 1 us a ping to pickle); the writer makes the datetime.
Packed = tuple[str, Sequence[str], str, str, float]
PackedResult = tuple[str | None, list[str], int]
_OUTCOMES = {outcome.value: outcome for outcome in Outcome}


def pack(request: Request) -> Packed | UnsubscribeRequest:
    if isinstance(request, UnsubscribeRequest):
        return request  # rare: pickled as it is
    return (
        request.token,
        request.proofs,
        request.channel,
        request.peer,
        request.received,
    )


def unpack(packed: Packed | UnsubscribeRequest) -> Request:
    if isinstance(packed, UnsubscribeRequest):
        return packed
    return PingRequest(*packed)


def pack_result(result: PingResult) -> PackedResult:
    return (result.batch_id, [outcome.value for outcome in result.outcomes], result.suppressed)


def unpack_result(packed: PackedResult) -> PingResult:
    batch_id, outcomes, suppressed = packed
    return PingResult(batch_id, [_OUTCOMES[value] for value in outcomes], suppressed)
