"""The writer process as a library object: a real child process each time."""

from __future__ import annotations

import asyncio
import multiprocessing

import pytest

from scrubber.config import Workspace
from scrubber.errors import StoreError
from scrubber.listener.ingest import Outcome, PingRequest, PingResult
from scrubber.listener.writer import WriterProcess
from tests.listener_support import make_batch, proof_for


def test_a_group_round_trip(workspace: Workspace) -> None:
    batch = make_batch(workspace, ["a@example.com", "b@example.com"])
    writer = WriterProcess(workspace.database_url, lock_wait_ms=1000, log_level="warning")
    writer.start()
    try:
        proof = proof_for("A@Example.com", batch)
        group = [
            PingRequest(batch.token, [proof, "garbage"], "http", "192.0.2.1"),
            PingRequest(batch.token, [proof], "smtp", "192.0.2.2"),
            PingRequest("no-such-token", [proof], "http", "192.0.2.3"),
        ]
        results = asyncio.run(writer.record_group(group))
    finally:
        writer.close()
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


def test_a_cancelled_group_does_not_answer_the_next(workspace: Workspace) -> None:
    """A group given up while in flight must not leave its answer in the pipe
    for the next group to read: the child is replaced."""
    batch = make_batch(workspace, ["a@example.com", "b@example.com"])
    writer = WriterProcess(workspace.database_url, lock_wait_ms=1000, log_level="warning")
    writer.start()

    async def scenario() -> list[PingResult]:
        first = [PingRequest("no-such-token", ["x"], "http", "192.0.2.1")] * 3
        task = asyncio.create_task(writer.record_group(first))
        await asyncio.sleep(0)  # sent; now waiting for the answer
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        proof = proof_for("b@example.com", batch)
        return await writer.record_group([PingRequest(batch.token, [proof], "http", "192.0.2.2")])

    try:
        results = asyncio.run(scenario())
    finally:
        writer.close()
    assert [r.outcomes for r in results] == [[Outcome.ACCEPTED]]
    assert multiprocessing.active_children() == []
