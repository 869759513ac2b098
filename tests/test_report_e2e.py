"""The whole pipeline as an operator runs it, then the report on it.

init, list import, batch create, batch post (spool), the real listener
answering real HTTP and SMTP pings, scrubber status while it runs, and the
signed report, whose every number is recounted from the database.
"""

from __future__ import annotations

import json
import re
import smtplib
import statistics
import urllib.request
from email.message import EmailMessage
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
from sqlalchemy import func, select, text

from scrubber.config import Settings
from scrubber.store.models import Batch, BatchEntry, BatchPart, Ping, Suppression
from scrubber.workspace import Workspace, init_workspace, load_workspace, open_store
from tests.listener_support import proof_for, start_listener, stored_outcomes
from tests.support import free_port, run_cli

SCHEMA = json.loads(files("scrubber.report").joinpath("schema.json").read_text("utf-8"))


def test_report_after_real_pings(tmp_path: Path) -> None:
    port = free_port()
    init_workspace(tmp_path / "ws", Settings(http_port=port))
    ws = load_workspace(tmp_path / "ws")
    addresses = [f"Reader.{i}+news@Example.COM" for i in range(12)]
    source = tmp_path / "customers.txt"
    source.write_text("\n".join(addresses) + "\n")
    assert run_cli("list", "import", "customers", str(source), workspace=ws.root).returncode == 0
    assert run_cli("batch", "create", "customers", workspace=ws.root).returncode == 0
    with open_store(ws) as store, store.read() as session:
        batch = session.scalars(select(Batch)).one()
    posted = run_cli("batch", "post", batch.id, workspace=ws.root)
    assert posted.returncode == 0, posted.stderr

    listener = start_listener(ws.root, "--http", f"127.0.0.1:{port}", channels=("smtp",))
    try:
        _http_ping(f"http://127.0.0.1:{port}", batch, addresses[:3] + addresses[:1], "AAAA")
        _smtp_ping(listener.smtp_port, batch, addresses[3:5])
        status = run_cli("status", workspace=ws.root)
    finally:
        assert listener.stop() == 0
    assert status.returncode == 0, status.stderr
    assert f"http://127.0.0.1:{port}/healthz: up" in status.stdout
    assert "serves this workspace's key" in status.stdout

    result = run_cli("report", batch.id, "-f", "json", "--check", workspace=ws.root)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    _matches_database(doc, ws, batch)
    for address in addresses:
        canonical = address.lower().replace("+news", "")
        assert canonical not in result.stdout and address not in result.stdout

    html = tmp_path / "report.html"
    assert run_cli("report", batch.id, "-o", str(html), workspace=ws.root).returncode == 0
    verified = run_cli("report", "verify", str(html), workspace=ws.root)
    assert verified.returncode == 0, verified.stderr

    # A later batch of the same list leaves the opted-out addresses out.
    assert run_cli("batch", "create", "customers", workspace=ws.root).returncode == 0
    summary = json.loads(run_cli("report", "--all", "-f", "json", workspace=ws.root).stdout)
    rows = summary["batches"]
    assert [r["addresses_hashed"] for r in rows] == [12, 7]
    assert all(r["invariants_ok"] for r in rows)


def _http_ping(base: str, batch: Batch, addresses: list[str], rubbish: str) -> None:
    proofs = [proof_for(a, batch) for a in addresses] + [rubbish]
    request = urllib.request.Request(
        f"{base}/dni/v1/ping/{batch.token}",
        data=json.dumps({"proofs": proofs}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def _smtp_ping(port: int, batch: Batch, addresses: list[str]) -> None:
    message = EmailMessage()
    message["From"] = "responder@example.net"
    message["To"] = batch.respond_smtp
    message["Subject"] = "DNI opt-out"
    message.set_content("".join(f"DNI-Proof: {proof_for(a, batch)}\n" for a in addresses))
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(message)


def _matches_database(doc: dict[str, Any], ws: Workspace, batch: Batch) -> None:
    with open_store(ws) as store, store.read() as s:
        by = dict(stored_outcomes(store, batch.id))
        pairs = s.execute(
            select(Suppression.suppressed_at, Ping.received_at)
            .join(Ping, Ping.id == Suppression.ping_id)
            .where(Ping.batch_id == batch.id)
        ).all()
        parts = (
            s.scalar(select(func.count()).where(BatchPart.batch_id == batch.id)),
            s.scalar(
                text("select count(distinct part) from batch_part_posts where batch_id = :b"),
                {"b": batch.id},
            ),
        )
        hashed = s.scalar(
            select(func.count()).select_from(BatchEntry).where(BatchEntry.batch_id == batch.id)
        )
    assert by == {
        ("http", "accepted"): 3,
        ("http", "duplicate"): 1,
        ("http", "invalid"): 1,
        ("smtp", "accepted"): 2,
    }
    for (channel, outcome), n in by.items():
        assert doc["pings"]["by_channel"][channel][outcome] == n
    assert doc["pings"]["total"] == 7
    assert doc["addresses_hashed"] == hashed == 12
    latencies = sorted(round((x - r).total_seconds(), 6) for x, r in pairs)
    assert doc["suppressions"]["count"] == len(latencies) == 5
    assert sorted(i["latency_seconds"] for i in doc["suppressions"]["items"]) == latencies
    stats = doc["latency_seconds"]
    assert (stats["min"], stats["max"]) == (latencies[0], latencies[-1])
    assert stats["median"] == round(statistics.median(latencies), 6)
    assert (doc["parts"]["total"], doc["parts"]["posted"]) == tuple(parts)
    assert parts[0] == parts[1] >= 1
    assert all(p["server"] and p["message_id"] for p in doc["parts"]["items"])
    items = doc["suppressions"]["items"]
    assert all(re.fullmatch(r"r\*\*\*@example\.com", i["address"]) for i in items)
    assert all(i["can_spam"] == i["gmail_yahoo"] == "met" for i in items)


def test_report_on_pings_from_the_ingest_api(tmp_path: Path) -> None:
    """Pings stored by the listener's sync API (any channel name) report exactly."""
    from scrubber.listener.ingestor import Ingestor
    from tests.listener_support import make_batch

    ws = init_workspace(tmp_path / "ws", Settings(http_port=free_port()))
    addresses = [f"api{i}@example.net" for i in range(6)]
    batch = make_batch(ws, addresses)
    with open_store(ws) as store:
        ingest = Ingestor(store)
        first = ingest.record(batch.token, [proof_for(a, batch) for a in addresses[:4]])
        again = ingest.record(batch.token, [proof_for(addresses[0], batch), "bm90LWEtcHJvb2Y"])
    assert first.counts()["accepted"] == 4
    assert again.counts() == {**again.counts(), "duplicate": 1, "invalid": 1}
    result = run_cli("report", batch.id, "-f", "json", workspace=ws.root)
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["pings"]["by_channel"]["api"] == {
        "accepted": 4,
        "duplicate": 1,
        "invalid": 1,
        "unknown-batch": 0,
        "rate-limited": 0,
    }
    assert doc["suppressions"]["count"] == 4 and doc["ok"] is True
    text = run_cli("report", batch.id, "-f", "text", workspace=ws.root).stdout
    assert re.search(r"api\s+4\s+1\s+1\s+0\s+0\s+6", text), text
