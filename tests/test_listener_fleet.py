"""A fleet: two `scrubber listen` processes on one PostgreSQL behind Debian's
nginx, configured exactly as docs/deployment.md shows. One listener is
SIGKILLed under load: every acknowledged ping is stored exactly once, and
the other listener answers everything sent after the kill. The edge's
`limit_req` is the fleet-wide limit per client."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from scrubber import scheme
from scrubber.config import Settings
from scrubber.store.models import Batch, Ping, Suppression
from scrubber.workspace import Workspace, init_workspace, open_store
from tests.listener_support import Listener, make_batch, proof_for, start_listener
from tests.nginx_support import documented_tls_proxy, nginx_binary, run_nginx
from tests.support import free_port

CLIENTS = 8
PER_CLIENT = 30  # under the edge's burst of 50: the load is not rate-limited
ADDRESSES = [f"fleet{i}@example.net" for i in range(CLIENTS * PER_CLIENT)]
KILL_AFTER = 60  # acknowledged pings before one listener is killed

pytestmark = pytest.mark.postgres


@dataclass
class Fleet:
    workspace: Workspace
    batch: Batch
    listeners: list[Listener]
    base: str


@pytest.fixture
def fleet(tmp_path: Path, pg_url: str) -> Iterator[Fleet]:
    nginx_binary()  # skip (or fail under CI) before starting anything
    # A cheap Argon2 cost: the fleet, not the hashing, is under test.
    ws = init_workspace(tmp_path / "ws", Settings(database_url=pg_url, argon2_t=1, argon2_m=8))
    batch = make_batch(ws, ADDRESSES)
    listeners = [
        start_listener(ws.root, "--trusted-proxy", "127.0.0.1", channels=("http",))
        for _ in range(2)
    ]
    port = free_port()
    upstreams = (listeners[0].ports["http"], listeners[1].ports["http"])
    config = documented_tls_proxy(tmp_path, port, upstreams)
    try:
        with run_nginx(tmp_path / "nginx", config):
            yield Fleet(ws, batch, listeners, f"https://127.0.0.1:{port}")
    finally:
        for listener in listeners:
            listener.stop()  # the killed one is only reaped


@dataclass
class Sent:
    proof: str
    started: float
    status: int


async def post(http: aiohttp.ClientSession, url: str, proof: str) -> tuple[int, str]:
    body = json.dumps({"proofs": [proof]})
    headers = {"Content-Type": "application/json"}
    try:
        async with http.post(url, data=body, headers=headers) as response:
            return response.status, await response.text()
    except aiohttp.ClientError:
        return 0, ""


async def client(fleet: Fleet, source: str, proofs: list[str], log: list[Sent]) -> None:
    """A responder: one ping at a time; a 5xx is retried once, as the responder does."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), ssl=False)
    url = f"{fleet.base}/dni/v1/ping/{fleet.batch.token}"
    async with aiohttp.ClientSession(connector=connector) as http:
        for proof in proofs:
            for _attempt in range(2):
                started = time.monotonic()
                status, _ = await post(http, url, proof)
                log.append(Sent(proof, started, status))
                if status == 200:
                    break
                await asyncio.sleep(0.2)


async def load_and_kill(fleet: Fleet, proofs: list[str]) -> tuple[list[Sent], float]:
    """Ping from CLIENTS addresses; SIGKILL the first listener mid-load.
    Returns every request and when the killed listener was gone."""
    log: list[Sent] = []
    tasks = [
        asyncio.create_task(client(fleet, f"127.0.0.{20 + i}", proofs[i::CLIENTS], log))
        for i in range(CLIENTS)
    ]
    while sum(s.status == 200 for s in log) < KILL_AFTER and not all(t.done() for t in tasks):
        await asyncio.sleep(0.01)
    victim = fleet.listeners[0].proc
    victim.send_signal(signal.SIGKILL)
    await asyncio.to_thread(victim.wait, 10)
    killed = time.monotonic()
    await asyncio.gather(*tasks)
    return log, killed


def accepted_per_proof(workspace: Workspace, batch: Batch) -> dict[str, int]:
    store = open_store(workspace)
    try:
        with store.read() as session:
            rows = session.execute(
                select(Ping.proof, func.count())
                .where(Ping.batch_id == batch.id, Ping.outcome == "accepted")
                .group_by(Ping.proof)
            ).all()
        return {scheme.b64url(bytes(p)): int(n) for p, n in rows}
    finally:
        store.close()


def suppressions(workspace: Workspace) -> int:
    store = open_store(workspace)
    try:
        with store.read() as session:
            return int(session.scalar(select(func.count()).select_from(Suppression)) or 0)
    finally:
        store.close()


async def flood(fleet: Fleet, source: str, proof: str, count: int) -> list[tuple[int, str]]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), ssl=False, limit=16)
    url = f"{fleet.base}/dni/v1/ping/{fleet.batch.token}"
    async with aiohttp.ClientSession(connector=connector) as http:
        return await asyncio.gather(*(post(http, url, proof) for _ in range(count)))


def edge_limits_each_client_across_the_fleet(fleet: Fleet) -> None:
    proof, other = (proof_for(a, fleet.batch) for a in ADDRESSES[:2])
    start = time.monotonic()
    answers = asyncio.run(flood(fleet, "127.0.0.9", proof, 120))
    elapsed = time.monotonic() - start
    statuses = [status for status, _ in answers]
    # burst 50 plus 20 a second: the rest is refused by nginx, before any listener.
    assert 50 <= statuses.count(200) <= 50 + 20 * elapsed + 1
    refused = [text for status, text in answers if status == 429]
    assert len(refused) == 120 - statuses.count(200)
    assert all("nginx" in text for text in refused)
    # Another client is not charged for it.
    assert [status for status, _ in asyncio.run(flood(fleet, "127.0.0.10", other, 1))] == [200]
    assert accepted_per_proof(fleet.workspace, fleet.batch) == {proof: 1, other: 1}


def test_a_fleet_behind_the_documented_nginx(fleet: Fleet) -> None:
    """One setup (PostgreSQL, two listeners, nginx) for both checks: it is the slow part."""
    edge_limits_each_client_across_the_fleet(fleet)
    a_killed_listener_loses_no_acknowledged_ping_and_the_other_keeps_serving(fleet)


def a_killed_listener_loses_no_acknowledged_ping_and_the_other_keeps_serving(fleet: Fleet) -> None:
    proofs = [proof_for(a, fleet.batch) for a in ADDRESSES]
    log, killed = asyncio.run(load_and_kill(fleet, proofs))

    acked = {s.proof for s in log if s.status == 200}
    after = [s for s in log if s.started > killed]
    assert sum(s.status == 200 for s in log if s.started <= killed) >= KILL_AFTER
    assert len(after) >= len(proofs) // 4, "killed too late to test anything"
    # The survivor answered every ping sent once the other was gone: nginx
    # passed them on when the connection to the dead listener failed.
    assert [s.status for s in after if s.status != 200] == []
    assert acked == set(proofs)  # the client's single retry got every ping through
    stored = accepted_per_proof(fleet.workspace, fleet.batch)
    assert {p: n for p, n in stored.items() if n != 1} == {}  # exactly once
    assert acked <= set(stored)
    assert suppressions(fleet.workspace) == len(stored) == len(ADDRESSES)
    assert fleet.listeners[1].proc.poll() is None
