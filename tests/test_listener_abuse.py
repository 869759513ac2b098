"""Floods against a live listener: refused and worthless work costs no storage,
and never crowds out a valid opt-out. Clients bind to 127.0.0.x sources, so
each address is a separate client (loopback only)."""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from scrubber import scheme
from scrubber.store.models import Batch, Ping, PingTally, Suppression
from scrubber.workspace import Workspace, open_store
from tests.listener_support import Listener, make_batch, proof_for, start_listener

ADDRESSES = [f"flooded{i}@example.org" for i in range(8)]


def forged(count: int = 1000) -> list[str]:
    return [scheme.b64url(os.urandom(16)) for _ in range(count)]


def rows(workspace: Workspace, model: Any) -> int:
    with open_store(workspace) as store, store.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


async def send(
    http: aiohttp.ClientSession, url: str, body: Any, *, raw: bytes | None = None
) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    async with http.post(url, data=data, headers=headers) as response:
        return response.status, await response.read()


def client(source: str) -> aiohttp.ClientSession:
    """An HTTP client whose connections come from ``source`` (a 127.0.0.x)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))


@pytest.fixture
def batch(workspace: Workspace) -> Batch:
    return make_batch(workspace, ADDRESSES)


@pytest.fixture
def listener(workspace: Workspace, batch: Batch) -> Iterator[Listener]:
    # A small budget per token: before the fix, whoever spent it blocked everyone.
    running = start_listener(workspace.root, "--client-rate", "600", "--token-rate", "1000")
    yield running
    assert running.stop() == 0, running.log()


def test_refused_and_unknown_requests_write_no_rows(
    workspace: Workspace, batch: Batch, listener: Listener
) -> None:
    url = f"{listener.http}/dni/v1/ping/{batch.token}"

    async def flood() -> list[int]:
        statuses = []
        async with client("127.0.0.2") as forger, client("127.0.0.3") as scanner:
            statuses.append((await send(forger, url, {"proofs": forged()}))[0])
            for _ in range(20):  # in debt now: refused before any work
                statuses.append((await send(forger, url, {"proofs": forged()}))[0])
            unknown = f"{listener.http}/dni/v1/ping/no-such-token"
            for _ in range(5):
                statuses.append((await send(scanner, unknown, {"proofs": forged()}))[0])
            async with client("127.0.0.4") as sloppy:
                statuses.append((await send(sloppy, url, {"proofs": forged(1001)}))[0])
                statuses.append((await send(sloppy, url, None, raw=b"[" * 50_000))[0])
        return statuses

    statuses = asyncio.run(flood())
    assert statuses[0] == 200  # checked: all invalid, tallied
    assert statuses[1:21] == [429] * 20
    assert statuses[21] == 404
    assert set(statuses[22:26]) == {429}  # the scanner is charged too
    assert statuses[26:] == [400, 400]
    # 26,000 refused or worthless proofs; one tally row (batch, http, 127.0.0.2, minute).
    assert rows(workspace, Ping) == 0
    assert rows(workspace, PingTally) == 1
    with open_store(workspace) as store, store.read() as session:
        assert session.scalar(select(PingTally.invalid)) == 1000


def test_a_valid_ping_succeeds_during_a_forged_flood(
    workspace: Workspace, batch: Batch, listener: Listener
) -> None:
    """Forgers on 40 addresses spend the token's budget many times over; a
    registrant's pings on both channels still succeed, each within seconds."""
    url = f"{listener.http}/dni/v1/ping/{batch.token}"
    answered: list[int] = []

    async def forge(source: str, stop: asyncio.Event) -> None:
        async with client(source) as http:
            while not stop.is_set():
                answered.append((await send(http, url, {"proofs": forged()}))[0])

    def smtp_ping(address: str) -> tuple[int, bytes]:
        rcpt = f"dni-{batch.token}@{workspace.settings.response_domain}"
        message = f"Subject: ping\r\n\r\nDNI-Proof: {proof_for(address, batch)}\r\n"
        with smtplib.SMTP("127.0.0.1", listener.smtp_port, timeout=10) as smtp:
            smtp.sendmail("ping@responder.example", [rcpt], message)
            return smtp.noop()

    async def registrant() -> list[tuple[int, Any]]:
        stop = asyncio.Event()
        flood = [asyncio.create_task(forge(f"127.0.0.{10 + i}", stop)) for i in range(40)]
        try:
            while len(answered) < 80:  # the token's budget is long spent
                await asyncio.sleep(0.01)
            results = []
            async with client("127.0.0.1") as http:
                for address in ADDRESSES[:4]:
                    body = {"proofs": [proof_for(address, batch)]}
                    status, raw = await asyncio.wait_for(send(http, url, body), 5)
                    results.append((status, json.loads(raw)["outcomes"]))
            for address in ADDRESSES[4:6]:
                results.append(await asyncio.wait_for(asyncio.to_thread(smtp_ping, address), 5))
            return results
        finally:
            stop.set()
            await asyncio.gather(*flood)

    results = asyncio.run(registrant())
    assert results[:4] == [(200, ["accepted"])] * 4
    assert [code for code, _ in results[4:]] == [250, 250]
    assert set(answered) <= {200, 429}
    assert rows(workspace, Suppression) == 6
    assert rows(workspace, Ping) == 6  # only the accepted proofs are rows
    # At most one tally row per forging address and minute.
    assert rows(workspace, PingTally) <= 40 * 2


def test_a_forger_refilling_its_bucket_is_refused_before_its_body_is_read(
    batch: Batch, listener: Listener
) -> None:
    """A client charged for 1,000 worthless proofs has room for a few more
    a second later (600 a minute): its small ping is still checked, but a
    45 KB body, more than it could have checked, is refused from its head
    alone, before a byte of it is read or parsed (before: read and parsed,
    then refused, over and over during forged-rotating)."""
    url = f"{listener.http}/dni/v1/ping/{batch.token}"

    async def charge_then_wait() -> int:
        async with client("127.0.0.30") as forger:
            status, _ = await send(forger, url, {"proofs": forged()})
            await asyncio.sleep(0.5)  # about 5 proofs of room now
            return status

    assert asyncio.run(charge_then_wait()) == 200
    sock = socket.create_connection(
        ("127.0.0.1", listener.ports["http"]), timeout=1.5, source_address=("127.0.0.30", 0)
    )
    head = (
        f"POST /dni/v1/ping/{batch.token} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 45000\r\n\r\n"
    )
    sock.sendall(head.encode())  # and no body: the answer must not wait for it
    answer = sock.recv(4096)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 429 "), answer

    async def small() -> int:
        async with client("127.0.0.30") as forger:
            return (await send(forger, url, {"proofs": forged(1)}))[0]

    assert asyncio.run(small()) == 200  # room for one proof: checked (and charged)
