"""The group committer's scheduling (committer.py): a registrant's small
request never waits behind the queue of large worthless ones (issue 13).

The recorder here stands in for the writer process: one group at a time
(the child commits them in order), each taking time in proportion to its
proofs, and it logs what each group held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from scrubber.listener.committer import GroupCommitter
from scrubber.listener.ping import Outcome, PingRequest, PingResult, Request

SECONDS_PER_PROOF = 5e-6  # a 1,000-proof group: 5 ms


class SerialRecorder:
    """Groups one after the other, like the writer process; logs each group's
    requests by peer."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.started = asyncio.Event()  # the first group is with the recorder
        self._one = asyncio.Lock()

    async def record_group(self, requests: Sequence[Request]) -> list[PingResult]:
        async with self._one:
            self.started.set()
            await asyncio.sleep(SECONDS_PER_PROOF * sum(len(r.proofs) for r in requests))
            self.groups.append([r.peer for r in requests])
            return [PingResult("b", [Outcome.INVALID] * len(r.proofs), 0) for r in requests]


def request(peer: str, proofs: int) -> PingRequest:
    return PingRequest("token", [f"p{i}" for i in range(proofs)], "http", peer)


async def answered_in_order(
    committer: GroupCommitter,
    recorder: SerialRecorder,
    suspects: list[PingRequest],
    late: PingRequest,
    *,
    late_suspect: bool,
) -> list[str]:
    """Queue the suspects, wait until the first group is being recorded, then
    send ``late``; the peers in the order their answers came."""
    order: list[str] = []

    async def send(one: PingRequest, suspect: bool) -> None:
        await committer.ping(one, suspect=suspect)
        order.append(one.peer)

    committer.start()
    tasks = [asyncio.create_task(send(s, True)) for s in suspects]
    await recorder.started.wait()
    tasks.append(asyncio.create_task(send(late, late_suspect)))
    await asyncio.gather(*tasks)
    await committer.close()
    return order


@pytest.mark.parametrize("inflight", [1, 2])
def test_a_clean_ping_waits_for_at_most_one_suspect_group(inflight: int) -> None:
    """Ten 1,000-proof requests from ten forging clients are queued and being
    checked when a registrant's one-proof ping arrives: it is answered after
    at most one of them (the group already with the recorder), and its group
    holds no suspect request. Before: it waited for 8 of the 10 (groups of up
    to 4,000 suspect proofs, and its own group carried 2,000 more)."""

    async def run() -> tuple[list[str], list[list[str]]]:
        recorder = SerialRecorder()
        committer = GroupCommitter(recorder, max_inflight=inflight)
        forgers = [request(f"forger{i}", 1000) for i in range(10)]
        order = await answered_in_order(
            committer, recorder, forgers, request("registrant", 1), late_suspect=False
        )
        return order, recorder.groups

    order, groups = asyncio.run(run())
    assert order.index("registrant") <= 1
    assert ["registrant"] in groups
    assert sorted(order) == sorted([f"forger{i}" for i in range(10)] + ["registrant"])


def test_suspect_requests_are_served_smallest_first() -> None:
    """A suspect client's 50-proof request is not queued behind others'
    1,000-proof ones (before: first come, first served)."""

    async def run() -> list[str]:
        recorder = SerialRecorder()
        committer = GroupCommitter(recorder)
        forgers = [request(f"forger{i}", 1000) for i in range(6)]
        return await answered_in_order(
            committer, recorder, forgers, request("bulk", 50), late_suspect=True
        )

    order = asyncio.run(run())
    assert order.index("bulk") <= 1


def test_suspect_groups_are_bounded_and_one_at_a_time() -> None:
    """With two groups in flight allowed, only one holds suspect requests,
    and it holds at most max_group_suspect_proofs of them (at least one
    request, whatever its size)."""
    busy: list[int] = []

    class Counting(SerialRecorder):
        suspect_groups = 0

        async def record_group(self, requests: Sequence[Request]) -> list[PingResult]:
            Counting.suspect_groups += 1
            busy.append(Counting.suspect_groups)
            try:
                return await super().record_group(requests)
            finally:
                Counting.suspect_groups -= 1

    async def run() -> list[list[str]]:
        recorder = Counting()
        committer = GroupCommitter(recorder, max_inflight=2, max_group_suspect_proofs=1000)
        committer.start()
        sizes = [1000, 400, 400, 300, 1000, 1200]
        await asyncio.gather(
            *(committer.ping(request(f"s{i}-{n}", n), suspect=True) for i, n in enumerate(sizes))
        )
        await committer.close()
        return recorder.groups

    groups = asyncio.run(run())
    assert max(busy) == 1  # never two suspect groups with the recorder
    # Smallest first, up to 1,000 proofs a group; a 1,200-proof request alone.
    assert groups == [
        ["s3-300", "s1-400"],
        ["s2-400"],
        ["s0-1000"],  # first come among equals
        ["s4-1000"],
        ["s5-1200"],
    ]


def test_suspects_progress_while_clean_requests_keep_coming() -> None:
    """One group in flight, a clean ping arriving during every commit: the
    lanes take turns, so a suspect request is not starved."""

    async def run() -> tuple[list[list[str]], list[str]]:
        recorder = SerialRecorder()
        committer = GroupCommitter(recorder, max_inflight=1)
        committer.start()
        done: list[str] = []

        async def suspect() -> None:
            await committer.ping(request("suspect", 1000), suspect=True)
            done.append("suspect")

        async def clean_stream() -> None:
            for i in range(20):
                await asyncio.sleep(0.001)
                await asyncio.gather(committer.ping(request(f"clean{i}", 1)), asyncio.sleep(0.001))
                done.append(f"clean{i}")

        first = asyncio.create_task(committer.ping(request("clean-first", 1)))
        await asyncio.sleep(0)
        await asyncio.gather(first, suspect(), clean_stream())
        await committer.close()
        return recorder.groups, done

    groups, done = asyncio.run(run())
    assert ["suspect"] in groups
    assert done.index("suspect") <= 2
