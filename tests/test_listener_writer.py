"""The writer process as a library object: a real child process each time."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sqlite3
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scrubber.errors import StoreError, StoreUnavailable
from scrubber.listener.channel import pack, unpack
from scrubber.listener.ping import Outcome, PingRequest, PingResult
from scrubber.listener.writer import WriterProcess
from scrubber.workspace import Workspace
from tests.listener_support import make_batch, proof_for
from tests.support import wait_until_async


def writer_for(workspace: Workspace) -> WriterProcess:
    return WriterProcess(workspace.database_url, lock_wait_ms=5000, log_level="warning")


def unknown(count: int) -> list[PingRequest]:
    return [PingRequest("no-such-token", ["x"], "http", "192.0.2.9")] * count


def child_pids() -> list[int]:
    return [p.pid for p in multiprocessing.active_children() if p.pid is not None]


def bytes_read(pid: int) -> int:
    """What the process has read so far, its pipe included (Linux's rchar)."""
    with open(f"/proc/{pid}/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))


def test_a_group_round_trip(workspace: Workspace) -> None:
    batch = make_batch(workspace, ["a@example.com", "b@example.com"])
    writer = writer_for(workspace)
    proof = proof_for("A@Example.com", batch)
    group = [
        PingRequest(batch.token, [proof, "garbage"], "http", "192.0.2.1"),
        PingRequest(batch.token, [proof], "smtp", "192.0.2.2"),
        PingRequest("no-such-token", [proof], "http", "192.0.2.3"),
    ]

    async def scenario() -> list[PingResult]:
        try:
            return await writer.record_group(group)
        finally:
            await writer.close()

    writer.start()
    results = asyncio.run(scenario())
    assert [r.outcomes for r in results] == [
        [Outcome.ACCEPTED, Outcome.INVALID],
        [Outcome.DUPLICATE],
        [Outcome.UNKNOWN_BATCH],
    ]
    assert [r.suppressed for r in results] == [1, 0, 0]
    assert [r.batch_id for r in results] == [batch.id, batch.id, None]
    assert multiprocessing.active_children() == []


def test_a_child_that_cannot_start_leaves_nothing_behind() -> None:
    writer = WriterProcess("nosuchdialect://x", lock_wait_ms=1000, log_level="warning")
    with pytest.raises(StoreError, match="cannot use database URL"):
        writer.start()
    assert multiprocessing.active_children() == []


def test_pipelined_groups_get_their_own_answers(workspace: Workspace) -> None:
    """Groups sent before the first is answered come back in order, each to
    its sender, and a cancelled one's answer is not read as the next's."""
    batch = make_batch(workspace, ["a@example.com", "b@example.com"])
    writer = writer_for(workspace)
    accepted = [PingRequest(batch.token, [proof_for("b@example.com", batch)], "http", "192.0.2.2")]

    async def scenario() -> tuple[list[PingResult], ...]:
        try:
            cancelled = asyncio.create_task(writer.record_group(unknown(3)))
            await asyncio.sleep(0)  # sent; now waiting for its answer
            cancelled.cancel()
            return await asyncio.gather(
                writer.record_group(unknown(2)),
                writer.record_group(accepted),
                writer.record_group(unknown(1)),
            )
        finally:
            await writer.close()

    results = asyncio.run(scenario())
    assert [[r.outcomes for r in group] for group in results] == [
        [[Outcome.UNKNOWN_BATCH]] * 2,
        [[Outcome.ACCEPTED]],
        [[Outcome.UNKNOWN_BATCH]],
    ]
    assert multiprocessing.active_children() == []


def test_a_child_killed_while_idle_is_replaced_without_a_failure(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    make_batch(workspace, ["a@example.com"])
    writer = writer_for(workspace)

    async def scenario() -> list[PingResult]:
        try:
            await writer.record_group(unknown(1))
            [first] = child_pids()
            os.kill(first, signal.SIGKILL)
            # The loop reaps a child as soon as its socket closes, and says so.
            reaped = await wait_until_async(
                lambda: any("event=writer-stopped" in r.getMessage() for r in caplog.records)
            )
            assert reaped, "the dead child was not reaped"
            results = await writer.record_group(unknown(1))
            assert child_pids() not in ([], [first])
            return results
        finally:
            await writer.close()

    with caplog.at_level(logging.INFO, logger="scrubber.listener"):
        results = asyncio.run(scenario())
    assert [r.outcomes for r in results] == [[Outcome.UNKNOWN_BATCH]]
    assert "event=writer-stopped" in caplog.text
    assert multiprocessing.active_children() == []


def test_a_child_killed_mid_group_fails_the_group_then_recovers(workspace: Workspace) -> None:
    """The group in flight is refused, never answered as stored; the next
    group gets a new child."""
    batch = make_batch(workspace, ["a@example.com", "b@example.com"])
    writer = writer_for(workspace)
    first = [PingRequest(batch.token, [proof_for("a@example.com", batch)], "http", "192.0.2.1")]
    second = [PingRequest(batch.token, [proof_for("b@example.com", batch)], "http", "192.0.2.2")]
    # The database's write lock, held here: the child's group waits for it.
    blocker = sqlite3.connect(workspace.root / "scrubber.db", isolation_level=None)

    async def scenario() -> list[PingResult]:
        try:
            await writer.record_group(unknown(1))  # started and idle
            [child] = child_pids()
            blocker.execute("BEGIN IMMEDIATE")
            idle = bytes_read(child)
            in_flight = asyncio.create_task(writer.record_group(first))
            # The child has taken the group off its pipe; the lock keeps it there.
            assert await wait_until_async(lambda: bytes_read(child) > idle, timeout=30)
            assert not in_flight.done()
            os.kill(child, signal.SIGKILL)
            with pytest.raises(StoreUnavailable):
                await in_flight
            blocker.execute("ROLLBACK")
            return await writer.record_group(second)
        finally:
            await writer.close()

    try:
        results = asyncio.run(scenario())
    finally:
        blocker.close()
    assert [r.outcomes for r in results] == [[Outcome.ACCEPTED]]
    check = sqlite3.connect(workspace.root / "scrubber.db")
    try:
        assert check.execute("SELECT count(*) FROM suppressions").fetchone() == (1,)
        accepted = "SELECT count(*) FROM pings WHERE outcome = 'accepted'"
        assert check.execute(accepted).fetchone() == (1,)
    finally:
        check.close()
    assert multiprocessing.active_children() == []


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2170, 12, 31),
        timezones=st.just(UTC),
    ),
)
def test_a_request_crosses_the_socket_unchanged(received_at: datetime) -> None:
    """The request time travels as a float timestamp: not a microsecond may be lost."""
    request = PingRequest("tok", ["p1", "p2"], "smtp", "192.0.2.7", received_at.timestamp())
    crossed = unpack(pack(request))
    assert crossed == request
    assert isinstance(crossed, PingRequest)
    assert crossed.received_at == received_at
