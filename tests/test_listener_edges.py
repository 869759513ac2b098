"""The listener as a real subprocess, spoken to over real sockets."""

from __future__ import annotations

import json
import smtplib
import socket
import sqlite3
import time
from collections.abc import Iterator
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import pytest
from sqlalchemy import func, select

from scrubber.store.models import Batch, Ping, Suppression
from scrubber.workspace import Workspace, open_store
from tests.listener_support import (
    Listener,
    get,
    make_batch,
    ping_json,
    post,
    proof_for,
    start_listener,
    stored_outcomes,
)
from tests.support import run_cli

ADDRESSES = [f"person{i}@example.org" for i in range(12)]


@pytest.fixture
def batch(workspace: Workspace) -> Batch:
    return make_batch(workspace, ADDRESSES)


@pytest.fixture
def listener(workspace: Workspace, batch: Batch) -> Iterator[Listener]:
    running = start_listener(workspace.root)
    yield running
    assert running.stop() == 0, running.log()


def count(workspace: Workspace, model: Any, *where: Any) -> int:
    store = open_store(workspace)
    try:
        with store.read() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    finally:
        store.close()


def exported(workspace: Workspace) -> list[str]:
    result = run_cli("list", "export", "customers", workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_http_valid_duplicate_forged_malformed(
    workspace: Workspace, batch: Batch, listener: Listener
) -> None:
    good = proof_for(ADDRESSES[1], batch)
    forged = proof_for("stranger@example.org", batch)
    status, body = ping_json(listener, batch.token, [good, forged, "not*base64"])
    assert status == 200
    assert body["outcomes"] == ["accepted", "invalid", "invalid"]
    assert body["counts"]["accepted"] == 1
    assert body["suppressed"] == 1
    status, body = post(
        f"{listener.http}/dni/v1/ping/{batch.token}", f"{good}\n\n".encode(), "text/plain"
    )
    assert (status, body["outcomes"]) == (200, ["duplicate"])
    # Parameters or another case: the media type is parsed, not matched whole.
    status, body = post(
        f"{listener.http}/dni/v1/ping/{batch.token}",
        f'{{"proofs": ["{good}"]}}'.encode(),
        "Application/JSON; charset=utf-8",
    )
    assert (status, body["outcomes"]) == (200, ["duplicate"])
    assert ping_json(listener, "unknown-token", [good])[0] == 404
    assert post(f"{listener.http}/dni/v1/ping/{batch.token}", b"{nope")[0] == 400
    assert post(f"{listener.http}/dni/v1/ping/{batch.token}", b'{"proofs": [1]}')[0] == 400
    assert post(f"{listener.http}/dni/v1/ping/{batch.token}", b'{"proofs": []}')[0] == 400
    assert post(f"{listener.http}/dni/v1/ping/{batch.token}", b"\xff\xfe", "text/plain")[0] == 400
    assert post(f"{listener.http}/dni/v1/ping/{batch.token}", b"x", "image/png")[0] == 415
    too_many = json.dumps({"proofs": ["A"] * 1001}).encode()
    assert post(f"{listener.http}/dni/v1/ping/{batch.token}", too_many)[0] == 400
    huge = json.dumps({"proofs": [good] * 10_000}).encode()
    assert post(f"{listener.http}/dni/v1/ping/{batch.token}", huge)[0] == 413

    remaining = exported(workspace)
    assert ADDRESSES[1] not in remaining
    assert sorted(remaining) == sorted(a for a in ADDRESSES if a != ADDRESSES[1])
    assert count(workspace, Suppression) == 1
    # A row for the accepted proof; the others counted in one tally row (or
    # two, if a minute ended in between); nothing for the unknown token.
    assert count(workspace, Ping) == count(workspace, Ping, Ping.outcome == "accepted") == 1
    with open_store(workspace) as store:
        assert stored_outcomes(store) == {
            ("http", "accepted"): 1,
            ("http", "duplicate"): 2,
            ("http", "invalid"): 2,
        }
    # A later batch of the same list leaves the suppressed address out.
    store = open_store(workspace)
    with store.read() as session:
        first = session.scalar(select(Batch.count).where(Batch.id == batch.id))
    store.close()
    result = run_cli("batch", "create", "customers", workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    store = open_store(workspace)
    with store.read() as session:
        newest = session.scalars(select(Batch).order_by(Batch.created_at.desc())).first()
    store.close()
    assert newest is not None
    assert newest.id != batch.id
    assert (first, newest.count) == (len(ADDRESSES), len(ADDRESSES) - 1)
    assert "person1@" not in listener.log()


def test_http_key_health_metrics(workspace: Workspace, listener: Listener) -> None:
    status, body = get(f"{listener.http}/dni/v1/key")
    public = (workspace.root / "keys" / "operator.pub").read_text().strip()
    assert status == 200
    assert json.loads(body)["key"] == public
    assert get(f"{listener.http}/healthz")[0] == 200
    assert get(f"{listener.http}/nowhere")[0] == 404
    status, text = get(f"{listener.http}/metrics")
    assert status == 200
    assert b'scrubber_pings_total{channel="http",outcome="accepted"} 0.0' in text
    assert b"scrubber_commit_seconds_bucket" in text
    assert b"scrubber_group_commit_requests_bucket" in text


def smtp_client(listener: Listener) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", listener.smtp_port, timeout=30)
    client.ehlo("responder.example")
    return client


def test_smtp_pings(workspace: Workspace, batch: Batch, listener: Listener) -> None:
    rcpt = f"dni-{batch.token}@{workspace.settings.response_domain}"
    good = proof_for(ADDRESSES[2], batch)
    forged = proof_for("stranger@example.org", batch)
    client = smtp_client(listener)
    body = f"Hello\nDNI-Proof: {good}\nDNI-Proof: {forged}\nbye\n"
    client.mail("ping@responder.example")
    assert client.rcpt(rcpt)[0] == 250
    code, reply = client.data(body.encode())
    assert code == 250
    assert b"accepted=1" in reply
    assert b"invalid=1" in reply
    # quoted-printable text/plain (soft line break inside the proof) in a
    # multipart message, the proof repeated: a duplicate
    qp = MIMEText("", "plain", "utf-8")
    del qp["Content-Transfer-Encoding"]
    qp["Content-Transfer-Encoding"] = "quoted-printable"
    qp.set_payload(f"Opt me out.\r\nDNI-Proof: {good[:10]}=\r\n{good[10:]}\r\n")
    mixed = MIMEMultipart()
    mixed["Subject"] = "opt-out"
    mixed.attach(qp)
    code, reply = _send(client, rcpt, mixed.as_bytes())
    assert code == 250
    assert b"duplicate=1" in reply
    client.mail("ping@responder.example")
    assert client.rcpt("dni-nosuchtoken@" + workspace.settings.response_domain)[0] == 550
    assert client.rcpt("victim@elsewhere.example")[0] == 550
    assert client.rcpt(f"dni-{batch.token}@elsewhere.example")[0] == 550
    client.rset()
    client.mail("ping@responder.example")
    client.rcpt(rcpt)
    assert client.data(b"no proofs here\n")[0] == 550
    client.mail("ping@responder.example")
    client.rcpt(rcpt)
    big = (f"DNI-Proof: {good}\r\n" * 4000).encode()
    assert client.data(big)[0] == 552
    client.quit()
    assert ADDRESSES[2] not in exported(workspace)
    assert count(workspace, Ping, Ping.channel == "smtp", Ping.outcome == "accepted") == 1
    assert count(workspace, Suppression) == 1
    assert "person2@" not in listener.log()
    metrics = get(f"{listener.http}/metrics")[1].decode()
    assert 'scrubber_pings_total{channel="smtp",outcome="accepted"} 1.0' in metrics
    assert 'scrubber_pings_total{channel="smtp",outcome="duplicate"} 1.0' in metrics
    assert 'scrubber_pings_total{channel="smtp",outcome="invalid"} 1.0' in metrics
    assert 'scrubber_responses_total{channel="smtp",status="550"}' in metrics


def _send(client: smtplib.SMTP, rcpt: str, message: bytes) -> tuple[int, bytes]:
    client.mail("ping@responder.example")
    assert client.rcpt(rcpt)[0] == 250
    return client.data(message)


def test_both_ping_formats_get_the_same_answers_for_v1_and_v2_batches(
    workspace: Workspace,
) -> None:
    old = make_batch(workspace, ADDRESSES[:6], "old", protocol=1)
    new = make_batch(workspace, ADDRESSES[6:], "new")
    assert (old.protocol, new.protocol) == (1, 2)
    running = start_listener(workspace.root)
    try:
        for batch, other, mine in ((old, new, ADDRESSES[:6]), (new, old, ADDRESSES[6:])):
            stranger = proof_for("stranger@example.org", batch)
            status, body = ping_json(running, batch.token, [proof_for(mine[0], batch), stranger])
            assert (status, body["outcomes"]) == (200, ["accepted", "invalid"])
            client = smtp_client(running)
            rcpt = f"dni-{batch.token}@{workspace.settings.response_domain}"
            message = f"Subject: opt-out\n\nDNI-Proof: {proof_for(mine[1], batch)}\n"
            code, reply = _send(client, rcpt, message.encode())
            client.quit()
            assert (code, reply) == (250, b"2.0.0 Stored: accepted=1")
            # A proof of this batch sent to the batch of the other protocol,
            # which does not hold the address: invalid, nothing suppressed.
            status, body = ping_json(running, other.token, [proof_for(mine[2], batch)])
            assert (status, body["outcomes"], body["suppressed"]) == (200, ["invalid"], 0)
    finally:
        assert running.stop() == 0, running.log()
    assert count(workspace, Suppression) == 4


def test_garbage_and_half_open_connections(workspace: Workspace, batch: Batch) -> None:
    listener = start_listener(workspace.root, "--read-timeout", "2")
    idle = [socket.create_connection(("127.0.0.1", listener.ports[c])) for c in ("http", "smtp")]
    garbage = b"\x00\xff\xfe garbage \r\n\r\n" * 50
    with socket.create_connection(("127.0.0.1", listener.ports["http"]), timeout=10) as sock:
        sock.sendall(garbage)
        assert sock.recv(4096).startswith(b"HTTP/1.0 400")
    with socket.create_connection(("127.0.0.1", listener.ports["smtp"]), timeout=10) as sock:
        sock.sendall(garbage)
        answers = b""
        while answers.count(b"\r\n") < 3:
            answers += sock.recv(4096)
        lines = answers.split(b"\r\n")
        assert lines[0].startswith(b"220 ")
        assert lines[1].startswith(b"500 ")
    with socket.create_connection(("127.0.0.1", listener.ports["http"]), timeout=30) as sock:
        # Headers promise a body that never comes: the read timeout answers.
        sock.sendall(
            f"POST /dni/v1/ping/{batch.token} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: text/plain\r\nContent-Length: 100\r\n\r\nAAA".encode()
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 408")
    good = proof_for(ADDRESSES[3], batch)
    assert ping_json(listener, batch.token, [good])[0] == 200
    client = smtp_client(listener)
    client.noop()
    client.quit()
    # The silent SMTP session is dropped after the timeout (the server speaks first).
    idle[1].settimeout(10)
    assert idle[1].recv(4096).startswith(b"220 ")
    assert idle[1].recv(4096) == b""  # closed after the read timeout
    idle[0].settimeout(10)
    assert idle[0].recv(4096) == b""  # the silent HTTP connection too
    for sock in idle:
        sock.close()
    assert listener.stop() == 0


def test_rate_limit(workspace: Workspace, batch: Batch) -> None:
    """Only worthless proofs are charged, to their sender; refusals store nothing."""
    running = start_listener(workspace.root, "--client-rate", "2")
    try:
        proofs = [proof_for(a, batch) for a in ADDRESSES[:4]]
        # The bucket holds at least one full request (1,000 proofs), then refills slowly.
        assert ping_json(running, batch.token, ["A"] * 997)[0] == 200
        # Room for 3 proofs: valid ones are not charged, so any number pass.
        for proof in proofs[:3]:
            assert ping_json(running, batch.token, [proof])[0] == 200
        assert ping_json(running, batch.token, ["A"] * 3)[0] == 200  # now no room
        status, _ = ping_json(running, batch.token, proofs[3:])
        assert status == 429
        # The same client on the other channel: refused as it connects.
        with pytest.raises(smtplib.SMTPConnectError, match=r"4\.7\.1"):
            smtp_client(running)
    finally:
        assert running.stop() == 0
    assert count(workspace, Ping) == count(workspace, Suppression) == 3


def test_locked_database_answers_temporary_failure(
    workspace: Workspace, batch: Batch, listener: Listener
) -> None:
    good = proof_for(ADDRESSES[4], batch)
    rcpt = f"dni-{batch.token}@{workspace.settings.response_domain}"
    client = smtp_client(listener)
    client.mail("ping@responder.example")
    assert client.rcpt(rcpt)[0] == 250  # token looked up before the lock
    db = sqlite3.connect(workspace.root / "scrubber.db", isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        status, body = ping_json(listener, batch.token, [good])
        assert status == 503, body
        message = f"Subject: ping\r\n\r\nDNI-Proof: {good}\r\n".encode()
        assert client.data(message)[0] == 451
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert count(workspace, Ping) == 0
    status, body = ping_json(listener, batch.token, [good])
    assert (status, body["outcomes"]) == (200, ["accepted"])
    client.quit()


def test_sigterm_finishes_in_flight_and_exits_zero(workspace: Workspace, batch: Batch) -> None:
    running = start_listener(workspace.root)
    good = proof_for(ADDRESSES[5], batch)
    assert ping_json(running, batch.token, [good])[0] == 200
    started = time.monotonic()
    assert running.stop() == 0
    assert time.monotonic() - started < 15
    assert "event=stopped" in running.log()
    assert count(workspace, Suppression) == 1
