"""Durability: SIGKILL under load loses no acknowledged ping; two listeners on
one PostgreSQL database suppress each address exactly once."""

from __future__ import annotations

import http.client
import json
import signal
import smtplib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scrubber.config import Settings
from scrubber.store.models import Batch, Ping, Suppression
from scrubber.workspace import Workspace, init_workspace, open_store
from tests.listener_support import (
    Listener,
    by_outcome,
    make_batch,
    proof_for,
    start_listener,
    stored_outcomes,
)
from tests.support import wait_until

ADDRESSES = [f"crash{i}@example.net" for i in range(400)]


def http_pinger(
    listener: Listener, token: str, proofs: list[str], acked: list[str], stop: threading.Event
) -> Callable[[], None]:
    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", listener.ports["http"], timeout=10)
        try:
            send(conn)
        finally:
            conn.close()

    def send(conn: http.client.HTTPConnection) -> None:
        for proof in proofs:
            if stop.is_set():
                return
            try:
                conn.request(
                    "POST",
                    f"/dni/v1/ping/{token}",
                    json.dumps({"proofs": [proof]}),
                    {"Content-Type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                return  # the listener died: this ping was not acknowledged
            if response.status == 200:
                acked.append(proof)

    return run


def smtp_pinger(
    listener: Listener, rcpt: str, proofs: list[str], acked: list[str], stop: threading.Event
) -> Callable[[], None]:
    def run() -> None:
        client = smtplib.SMTP()
        try:
            client.connect("127.0.0.1", listener.smtp_port)
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for proof in proofs:
                if stop.is_set():
                    return
                client.mail("p@responder.example")
                client.rcpt(rcpt)
                code, _ = client.data(f"DNI-Proof: {proof}\n".encode())
                if code == 250:
                    acked.append(proof)
        except (OSError, smtplib.SMTPException):
            return  # the listener died: this ping was not acknowledged
        finally:
            client.close()

    return run


def test_sigkill_loses_no_acknowledged_ping(workspace: Workspace) -> None:
    batch = make_batch(workspace, ADDRESSES)
    proofs = [proof_for(a, batch) for a in ADDRESSES]
    rcpt = f"dni-{batch.token}@{workspace.settings.response_domain}"
    listener = start_listener(workspace.root, "--client-rate", "0")
    acked: list[str] = []
    stop = threading.Event()
    workers = [
        threading.Thread(target=http_pinger(listener, batch.token, proofs[i::6], acked, stop))
        for i in range(4)
    ] + [
        threading.Thread(target=smtp_pinger(listener, rcpt, proofs[i::6], acked, stop))
        for i in range(4, 6)
    ]
    for worker in workers:
        worker.start()
    wait_until(lambda: len(acked) >= 60, timeout=20)  # checked once the clients stop
    listener.stop(signal.SIGKILL)
    stop.set()
    for worker in workers:
        worker.join(30)
    assert len(acked) >= 60, "the clients never got going"
    assert len(acked) < len(proofs), "killed too late to test anything"

    restarted = start_listener(workspace.root)  # recovers the WAL
    assert restarted.stop() == 0
    store = open_store(workspace)
    with store.read() as session:
        stored = {
            bytes(p)
            for (p,) in session.execute(
                select(Ping.proof).where(Ping.batch_id == batch.id, Ping.outcome == "accepted")
            )
        }
        suppressed = session.scalar(select(func.count()).select_from(Suppression))
    store.close()
    from scrubber import scheme

    missing = [p for p in acked if scheme.from_b64url(p) not in stored]
    assert missing == []
    assert suppressed == len(stored) >= len(acked)


@pytest.mark.postgres
def test_two_listeners_on_postgres(tmp_path: Path, pg_url: str) -> None:
    ws = init_workspace(tmp_path / "ws", Settings(database_url=pg_url))
    addresses = ADDRESSES[:120]
    batch = make_batch(ws, addresses)
    proofs = [proof_for(a, batch) for a in addresses]
    first = start_listener(ws.root, "--client-rate", "0", channels=("http",))
    second = start_listener(ws.root, "--client-rate", "0", channels=("http",))
    acked: list[str] = []
    stop = threading.Event()
    # Every proof goes to both listeners, from two clients each, at once.
    workers = [
        threading.Thread(target=http_pinger(listener, batch.token, proofs, acked, stop))
        for listener in (first, second, first, second)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert first.stop() == 0
    assert second.stop() == 0
    assert len(acked) == 4 * len(proofs)
    store = open_store(ws)
    with store.read() as session:
        per_proof = session.execute(
            select(Ping.proof, func.count())
            .where(Ping.outcome == "accepted")
            .group_by(Ping.proof)
            .having(func.count() > 1)
        ).all()
        suppressions = session.scalar(select(func.count()).select_from(Suppression))
        by_ping = session.scalar(
            select(func.count()).select_from(Suppression).where(Suppression.channel == "dni-ping")
        )
    outcomes = by_outcome(stored_outcomes(store, batch.id))
    store.close()
    assert per_proof == []
    assert outcomes == {"accepted": len(proofs), "duplicate": 3 * len(proofs)}
    assert suppressions == by_ping == len(addresses)
    assert isinstance(batch, Batch)


@pytest.mark.postgres
def test_database_down_answers_503_then_recovers(tmp_path: Path, pg_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.listener_support import get, ping_json

    ws = init_workspace(tmp_path / "ws", Settings(database_url=pg_url))
    addresses = ADDRESSES[:3]
    batch = make_batch(ws, addresses)
    listener = start_listener(ws.root, channels=("http",))
    name = make_url(pg_url).database
    admin = create_engine(pg_url.replace(f"/{name}", "/postgres"), isolation_level="AUTOCOMMIT")
    try:
        assert ping_json(listener, batch.token, [proof_for(addresses[0], batch)])[0] == 200
        with admin.connect() as conn:  # the database goes away under the listener
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            # Client backends only: PostgreSQL treats an autovacuum worker there
            # as a superuser's process, which a non-superuser may not end.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND backend_type = 'client backend'"
                ),
                {"n": name},
            )
        status, body = ping_json(listener, batch.token, [proof_for(addresses[1], batch)])
        assert status == 503, body
        assert get(f"{listener.http}/healthz")[0] == 503
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        status, body = ping_json(listener, batch.token, [proof_for(addresses[1], batch)])
        assert (status, body["outcomes"]) == (200, ["accepted"])
        assert listener.stop() == 0
    finally:
        listener.stop(signal.SIGKILL)
        admin.dispose()
    store = open_store(ws)
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 2
    store.close()


def test_sigterm_under_load_commits_in_flight_and_exits_zero(workspace: Workspace) -> None:
    batch = make_batch(workspace, ADDRESSES)
    proofs = [proof_for(a, batch) for a in ADDRESSES]
    listener = start_listener(workspace.root, "--client-rate", "0", channels=("http",))
    acked: list[str] = []
    stop = threading.Event()
    workers = [
        threading.Thread(target=http_pinger(listener, batch.token, proofs[i::4], acked, stop))
        for i in range(4)
    ]
    for worker in workers:
        worker.start()
    wait_until(lambda: len(acked) >= 40, timeout=20)  # checked once the clients stop
    assert listener.stop(signal.SIGTERM) == 0, listener.log()
    stop.set()
    for worker in workers:
        worker.join(30)
    assert "event=stopped" in listener.log()
    store = open_store(workspace)
    with store.read() as session:
        accepted = session.scalar(
            select(func.count()).select_from(Ping).where(Ping.outcome == "accepted")
        )
    store.close()
    assert 40 <= len(acked) <= (accepted or 0)


def _writer_pids(listener: Listener) -> list[int]:
    return [
        int(line.split("pid=")[1].split()[0])
        for line in listener.lines
        if "event=writer-started" in line
    ]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_writer_process_death_is_survived(workspace: Workspace) -> None:
    """The writer child dies between pings: the listener notices, starts a
    new one and stores the next ping. (A child dying with a group in flight
    fails that group: tests/test_listener_writer.py.)"""
    import os

    from tests.listener_support import ping_json

    batch = make_batch(workspace, ADDRESSES[:3])
    listener = start_listener(workspace.root, channels=("http",))
    try:
        assert ping_json(listener, batch.token, [proof_for(ADDRESSES[0], batch)])[0] == 200
        [first] = _writer_pids(listener)
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: "event=writer-stopped" in listener.log(), timeout=10)
        status, body = ping_json(listener, batch.token, [proof_for(ADDRESSES[1], batch)])
        assert (status, body["outcomes"]) == (200, ["accepted"])
        assert len(_writer_pids(listener)) == 2
        assert listener.stop() == 0
    finally:
        listener.stop(signal.SIGKILL)
    store = open_store(workspace)
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 2
        assert session.scalar(select(func.count()).select_from(Ping)) == 2
    store.close()


def test_writer_process_exits_with_a_killed_listener(workspace: Workspace) -> None:
    listener = start_listener(workspace.root, channels=("http",))
    [writer] = _writer_pids(listener)
    assert _alive(writer)
    listener.stop(signal.SIGKILL)
    assert wait_until(lambda: not _alive(writer), timeout=10), "the writer outlived its listener"
