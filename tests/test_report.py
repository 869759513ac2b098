"""Compliance reports: exact numbers, every format, signatures, --all, --check, status.

Batches are made by the real create_batch; pings and suppressions are
recorded as rows, the way the listener stores them. Every number a report
states is recounted here straight from the database.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import secrets
import statistics
import threading
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update

from scrubber import lists, scheme
from scrubber.batch.create import create_batch, request_from_settings
from scrubber.deadlines import add_business_days
from scrubber.hashing import ThreadExecutor
from scrubber.keys import OperatorKey
from scrubber.report import build, sign
from scrubber.store import Store
from scrubber.store.models import Batch, BatchEntry, CachedDigest, Ping, Suppression
from scrubber.workspace import Workspace, load_key, load_workspace, open_store
from tests.report_support import (
    DAY,
    TIMELY,
    Seeded,
    add_parts,
    make_batch,
    make_workspace,
    record_pings,
)
from tests.support import run_cli

SCHEMA = json.loads(files("scrubber.report").joinpath("schema.json").read_text("utf-8"))
# 3 days: late for Gmail/Yahoo only; 20 days: late for CAN-SPAM too.
LATE = [*TIMELY, ("http", "accepted", 8, 3 * DAY), ("smtp", "accepted", 9, 20 * DAY)]


def bucket_start(moment: datetime, seconds: int) -> str:
    """The timeline's name for the ``seconds``-wide UTC bucket holding ``moment``."""
    start = int(moment.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def store_parts_total(store: Store, batch_id: str) -> int:
    with store.read() as session:
        return int(session.scalar(select(Batch.parts_total).where(Batch.id == batch_id)) or 0)


def report_json(ws: Workspace, batch: str, *extra: str) -> dict[str, Any]:
    result = run_cli("report", batch, "--format", "json", *extra, workspace=ws.root)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    return document


def recount(store: Store, batch_id: str) -> dict[str, Any]:
    """The report's numbers, counted again with plain SQL."""
    with store.read() as s:
        by = s.execute(
            text(
                "select channel, outcome, count(*) from pings where batch_id = :b "
                "group by channel, outcome"
            ),
            {"b": batch_id},
        ).all()
        hashed = s.scalar(
            text("select count(*) from batch_entries where batch_id = :b"), {"b": batch_id}
        )
        suppressed = s.scalar(
            text(
                "select count(*) from pings p join suppressions x on x.address_id = p.address_id "
                "where p.batch_id = :b and p.outcome = 'accepted'"
            ),
            {"b": batch_id},
        )
        posted = s.scalar(
            text("select count(distinct part) from batch_part_posts where batch_id = :b"),
            {"b": batch_id},
        )
    return {
        "by": {(c, o): n for c, o, n in by},
        "hashed": hashed,
        "suppressed": suppressed,
        "posted": posted,
    }


def expected_latency(plan: list[tuple[str, str, int, float | None]]) -> dict[str, Any]:
    values = sorted(lat for _, o, _, lat in plan if o == "accepted" and lat is not None)
    return {
        "count": len(values),
        "min": values[0],
        "median": statistics.median(values),
        "p99": values[math.ceil(0.99 * len(values)) - 1],
        "max": values[-1],
    }


# -- exactness ----------------------------------------------------------------


def test_json_report_numbers_match_the_database(seeded: Seeded) -> None:
    doc = report_json(seeded.workspace, seeded.batch_id)
    with open_store(seeded.workspace) as store:
        truth = recount(store, seeded.batch_id)
    assert doc["batch"]["id"] == seeded.batch_id
    assert doc["batch"]["lists"] == ["customers"]
    assert doc["batch"]["argon2"] == {"t": 2, "m": 1024, "p": 1}
    key = load_key(seeded.workspace)
    assert doc["batch"]["key_fingerprint"] == key.fingerprint
    assert doc["signature"]["key_fingerprint"] == key.fingerprint
    assert doc["addresses_hashed"] == truth["hashed"] == len(seeded.addresses)
    for channel, counts in doc["pings"]["by_channel"].items():
        for outcome, n in counts.items():
            assert n == truth["by"].get((channel, outcome), 0), (channel, outcome)
    assert doc["pings"]["total"] == sum(truth["by"].values()) == len(TIMELY)
    assert doc["suppressions"]["count"] == truth["suppressed"] == 4
    assert doc["suppressions"]["pending"] == 0
    assert doc["parts"]["posted"] == truth["posted"] == 2
    assert doc["parts"]["total"] == 3
    assert [p["server"] for p in doc["parts"]["items"]] == ["nntp://127.0.0.1:119"] * 2 + [None]
    assert [p["message_id"] for p in doc["parts"]["items"]] == [
        f"<{seeded.batch_id}.{k}@dni.example.test>" for k in (1, 2, 3)
    ]
    assert doc["latency_seconds"] == expected_latency(TIMELY)
    assert all(d["ok"] and d["checked"] == 4 and d["met"] == 4 for d in doc["deadlines"])
    assert all(i["ok"] and i["violations"] == 0 for i in doc["invariants"])
    assert doc["ok"] is True
    timeline = doc["timeline"]
    assert sum(b["accepted"] + b["other"] for b in timeline) == len(TIMELY)
    assert sum(b["suppressed"] for b in timeline) == 4
    # Pings over 4 hours, suppressions up to 1.5 days later: hourly buckets.
    assert {b["seconds"] for b in timeline} == {3600}
    hours = {b["start"]: b for b in timeline}
    assert hours[bucket_start(seeded.created_at + timedelta(hours=1), 3600)]["accepted"] == 1
    assert hours[bucket_start(seeded.created_at + timedelta(hours=5), 3600)]["other"] == 2


def test_late_suppressions_fail_the_deadlines_and_check(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path / "ws")
    data = make_batch(workspace)
    with open_store(workspace) as store:
        record_pings(store, data.batch_id, LATE)
    doc = report_json(workspace, data.batch_id)
    rules = {d["rule"]: d for d in doc["deadlines"]}
    assert (rules["gmail_yahoo"]["late"], rules["gmail_yahoo"]["met"]) == (2, 4)
    assert (rules["can_spam"]["late"], rules["can_spam"]["met"]) == (1, 5)
    assert doc["ok"] is False
    assert doc["latency_seconds"] == expected_latency(LATE)
    result = run_cli("report", data.batch_id, "--check", "-f", "json", workspace=workspace.root)
    assert result.returncode == 3
    assert result.stderr.startswith("error: check failed: CAN-SPAM deadline")
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["ok"] is False  # the report is still written


def test_check_passes_on_a_compliant_batch(seeded: Seeded) -> None:
    result = run_cli(
        "report", seeded.batch_id, "--check", "-f", "csv", workspace=seeded.workspace.root
    )
    assert result.returncode == 0, result.stderr


def test_unsuppressed_accepted_ping_is_pending_then_late(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path / "ws")
    data = make_batch(workspace)
    with open_store(workspace) as store:
        record_pings(store, data.batch_id, [("http", "accepted", 0, None)])
        soon = build.build_report(store, data.batch_id, now=data.created_at + timedelta(days=1))
        later = build.build_report(store, data.batch_id, now=data.created_at + timedelta(days=30))
    jsonschema.validate(soon, SCHEMA)
    assert soon["suppressions"]["pending"] == 1
    assert [d["pending"] for d in soon["deadlines"]] == [1, 1]
    assert soon["ok"] is True
    assert [d["late"] for d in later["deadlines"]] == [1, 1]
    assert later["ok"] is False


def test_invariant_catches_a_relisted_suppressed_address(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path / "ws")
    first = make_batch(workspace)
    second = make_batch(workspace, name="more")
    with open_store(workspace) as store:
        # A bug elsewhere: an address suppressed before `second` got into it.
        with store.write() as session:
            victim = session.execute(
                select(BatchEntry.address_id).where(BatchEntry.batch_id == second.batch_id).limit(1)
            ).one()
            session.add(
                Suppression(
                    address_id=victim.address_id,
                    suppressed_at=second.created_at - timedelta(seconds=1),
                    channel="manual",
                    reason="manual",
                    received_at=second.created_at - timedelta(seconds=1),
                )
            )
        # And an address opted out through `first`, yet listed in a later batch.
        with store.write() as session:
            late_batch = session.get(Batch, second.batch_id)
            assert late_batch is not None
            listed = session.scalars(
                select(BatchEntry.address_id).where(
                    BatchEntry.batch_id == first.batch_id,
                    BatchEntry.address_id != victim.address_id,
                )
            ).first()
            proof = session.scalar(
                select(CachedDigest.proof).where(
                    CachedDigest.epoch_id == late_batch.epoch_id, CachedDigest.address_id == listed
                )
            )
            session.add(BatchEntry(batch_id=second.batch_id, tag=b"\x02" * 8, address_id=listed))
            ping = Ping(
                token="t",
                batch_id=first.batch_id,
                proof=proof,
                outcome="accepted",
                channel="http",
                peer="127.0.0.1",
                address_id=listed,
                received_at=first.created_at,
                committed_at=first.created_at,
            )
            session.add(ping)
            session.flush()
            session.add(
                Suppression(
                    address_id=listed,
                    suppressed_at=late_batch.created_at - timedelta(microseconds=1),
                    channel="dni-ping",
                    reason="registry",
                    received_at=first.created_at,
                    batch_id=first.batch_id,
                    ping_id=ping.id,
                )
            )
    doc2 = report_json(workspace, second.batch_id)
    broken = {i["check"]: i for i in doc2["invariants"]}
    # Both: the manually suppressed one and the one re-listed after its opt-out.
    assert broken["not_previously_suppressed"]["violations"] == 2
    assert broken["not_previously_suppressed"]["ok"] is False
    doc1 = report_json(workspace, first.batch_id)
    relisted = {i["check"]: i for i in doc1["invariants"]}["not_relisted_later"]
    assert (relisted["violations"], relisted["ok"]) == (1, False)
    assert relisted["examples"][0].endswith("***@example.org")
    result = run_cli(
        "report", second.batch_id, "--check", "-o", str(tmp_path / "r.md"), workspace=workspace.root
    )
    assert result.returncode == 3
    assert "invariant broken (2 address(es))" in result.stderr


# -- formats --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "md", "json", "csv", "html"])
def test_every_format_names_the_batch_and_masks_addresses(seeded: Seeded, fmt: str) -> None:
    result = run_cli("report", seeded.batch_id, "--format", fmt, workspace=seeded.workspace.root)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert seeded.batch_id in out
    for address in seeded.addresses:
        assert address not in out
        assert address.split("@")[0] not in out
    assert "p***@example.org" in out


def test_text_report_shows_the_tables(seeded: Seeded) -> None:
    out = run_cli("report", seeded.batch_id, "-f", "text", workspace=seeded.workspace.root).stdout
    for heading in (
        "Pings by channel and outcome",
        "Removal latency",
        "Deadline checks",
        "Invariants",
        "Suppressed addresses (masked)",
    ):
        assert heading in out
    assert "━" in out  # rich table rules


def test_csv_layout_counts_match(seeded: Seeded) -> None:
    out = run_cli("report", seeded.batch_id, "-f", "csv", workspace=seeded.workspace.root).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    pings = {(r["channel"], r["outcome"]): int(r["count"]) for r in rows if r["record"] == "pings"}
    with open_store(seeded.workspace) as store:
        truth = recount(store, seeded.batch_id)
    assert len(pings) == 10  # 2 channels x 5 outcome classes
    assert {k: v for k, v in pings.items() if v} == truth["by"]
    suppressions = [r for r in rows if r["record"] == "suppression"]
    assert len(suppressions) == truth["suppressed"]
    latencies = sorted(float(r["latency_seconds"]) for r in suppressions)
    assert latencies == sorted(lat for *_, lat in TIMELY if lat is not None)
    assert {r["can_spam"] for r in suppressions} == {"met"}


def test_markdown_has_tables(seeded: Seeded) -> None:
    out = run_cli("report", seeded.batch_id, "-f", "md", workspace=seeded.workspace.root).stdout
    assert out.startswith(f"# scrubber compliance report: batch {seeded.batch_id}\n")
    assert (
        "| channel | accepted | duplicate | invalid | unknown-batch | rate-limited | total |" in out
    )
    assert "| all | 4 | 1 | 2 | 0 | 1 | 8 |" in out


def test_batch_without_pings_is_a_valid_mostly_empty_report(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path / "ws")
    data = make_batch(workspace, n=5)
    doc = report_json(workspace, data.batch_id)
    assert doc["pings"]["total"] == 0
    assert doc["suppressions"] == {"count": 0, "pending": 0, "items": []}
    assert doc["latency_seconds"] == {
        "count": 0,
        "min": None,
        "median": None,
        "p99": None,
        "max": None,
    }
    with open_store(workspace) as store:
        assert doc["parts"]["total"] == store_parts_total(store, data.batch_id)
    assert doc["parts"]["posted"] == 0
    assert all(p["posted_at"] is None and p["server"] is None for p in doc["parts"]["items"])
    assert doc["timeline"] == []
    assert doc["ok"] is True
    html = tmp_path / "empty.html"
    result = run_cli("report", data.batch_id, "-o", str(html), "--check", workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    assert "no pings or suppressions yet" in html.read_text("utf-8")
    assert run_cli("report", "verify", str(html), workspace=workspace.root).returncode == 0


def test_output_format_follows_the_file_suffix(seeded: Seeded, tmp_path: Path) -> None:
    for suffix, probe in (
        (".json", "{"),
        (".html", "<!DOCTYPE html>"),
        (".md", "# "),
        (".csv", "record,"),
    ):
        target = tmp_path / f"r{suffix}"
        result = run_cli(
            "report", seeded.batch_id, "-o", str(target), workspace=seeded.workspace.root
        )
        assert result.returncode == 0, result.stderr
        assert target.read_text("utf-8").startswith(probe)


def test_html_is_self_contained(seeded: Seeded, tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    run_cli("report", seeded.batch_id, "-o", str(target), workspace=seeded.workspace.root)
    page = target.read_text("utf-8")
    assert "default-src 'none'" in page
    for external in ("http://", "https://", "src=", "@import", "url("):
        hits = [
            line for line in page.splitlines() if external in line and "scrubber-report" not in line
        ]
        # The only URLs are the batch's response addresses, shown as text.
        assert all("dni/v1/ping" in h or "www.w3.org/2000/svg" in h for h in hits), hits
    assert "<svg" in page and "<rect" in page


# -- signing and verification ---------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".html", ".md"])
def test_verify_accepts_the_untouched_file(seeded: Seeded, tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"r{suffix}"
    run_cli("report", seeded.batch_id, "-o", str(target), workspace=seeded.workspace.root)
    result = run_cli("report", "verify", str(target), workspace=seeded.workspace.root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"valid: {target}")
    assert "signed by the workspace key " in result.stdout


TAMPERINGS = {
    ".json": [
        ('"accepted": 4', '"accepted": 3'),
        ('"ok": true', '"ok": false'),
        ("\n}", "}"),  # whitespace only
    ],
    ".html": [
        ("<td>4</td>", "<td>3</td>"),  # the visible table, embedded JSON untouched
        ("PASS", "FAIL"),
        ('"accepted":4', '"accepted":3'),  # the embedded JSON
    ],
    ".md": [("| all | 4 |", "| all | 3 |")],
}


@pytest.mark.parametrize(
    ("suffix", "old", "new"), [(s, o, n) for s, pairs in TAMPERINGS.items() for o, n in pairs]
)
def test_verify_rejects_any_change(
    seeded: Seeded, tmp_path: Path, suffix: str, old: str, new: str
) -> None:
    target = tmp_path / f"r{suffix}"
    run_cli("report", seeded.batch_id, "-o", str(target), workspace=seeded.workspace.root)
    original = target.read_text("utf-8")
    assert old in original
    target.write_text(original.replace(old, new, 1), encoding="utf-8")
    result = run_cli("report", "verify", str(target), workspace=seeded.workspace.root)
    assert result.returncode == 1
    assert result.stderr.startswith("error: INVALID:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_rejects_a_report_resigned_with_another_key(seeded: Seeded, tmp_path: Path) -> None:
    doc = report_json(seeded.workspace, seeded.batch_id)
    doc["suppressions"]["count"] = 0
    forged = sign.sign_report(doc, OperatorKey.generate())
    target = tmp_path / "forged.json"
    target.write_text(json.dumps(forged, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    # Consistent in itself, so only the key comparison can catch it.
    outside = run_cli("report", "verify", str(target))
    assert outside.returncode == 4
    assert outside.stderr.startswith("error: UNTRUSTED: signed by key ")
    assert "(trusted: none)" in outside.stderr
    inside = run_cli("report", "verify", str(target), workspace=seeded.workspace.root)
    assert inside.returncode == 4
    assert "which is not a trusted key" in inside.stderr
    pub = seeded.workspace.path(seeded.workspace.settings.public_key)
    with_key = run_cli("report", "verify", str(target), "--key", str(pub))
    assert with_key.returncode == 4
    theirs = forged["signature"]["key"]
    named = run_cli("report", "verify", str(target), "--key", theirs)
    assert named.returncode == 0, named.stderr
    assert f"signed by the key given with --key {forged['signature']['key_fingerprint']}" in (
        named.stdout
    )


def test_verify_bad_inputs(tmp_path: Path) -> None:
    missing = run_cli("report", "verify", str(tmp_path / "nope.json"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: cannot read")
    plain = tmp_path / "plain.html"
    plain.write_text("<html><body>hello</body></html>")
    result = run_cli("report", "verify", str(plain))
    assert result.returncode == 1
    assert "embeds no signed scrubber report" in result.stderr
    garbage = tmp_path / "bad.json"
    garbage.write_text("{not json")
    result = run_cli("report", "verify", str(garbage))
    assert (result.returncode, result.stderr.startswith("error: INVALID:")) == (1, True)
    bad_key = run_cli("report", "verify", str(garbage), "--key", "nonsense")
    assert bad_key.returncode == 2


# -- bad input ----------------------------------------------------------------------


def test_unknown_batch_is_one_line_error(seeded: Seeded) -> None:
    result = run_cli("report", "20990101-deadbeef", workspace=seeded.workspace.root)
    assert result.returncode == 1
    assert result.stderr == "error: no batch '20990101-deadbeef' (see 'scrubber report --all')\n"


def test_unwritable_output_path(seeded: Seeded, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "r.json"
    result = run_cli("report", seeded.batch_id, "-o", str(target), workspace=seeded.workspace.root)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot write {target}")
    assert not target.parent.exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    result = run_cli(
        "report", seeded.batch_id, "-o", str(blocker / "r.html"), workspace=seeded.workspace.root
    )
    assert (result.returncode, result.stderr.count("\n")) == (1, 1)
    assert result.stderr.startswith(f"error: cannot write {blocker / 'r.html'}")
    assert blocker.read_text() == "keep me"
    # Even root cannot create files in /proc.
    result = run_cli(
        "report", seeded.batch_id, "-o", "/proc/r.json", workspace=seeded.workspace.root
    )
    assert (result.returncode, result.stderr.count("\n")) == (1, 1)
    assert "Traceback" not in result.stderr


def test_usage_errors(seeded: Seeded) -> None:
    ws = seeded.workspace.root
    both = run_cli("report", seeded.batch_id, "--all", workspace=ws)
    assert (both.returncode, "not both" in both.stderr) == (2, True)
    neither = run_cli("report", workspace=ws)
    assert (neither.returncode, "give a BATCH id" in neither.stderr) == (2, True)
    since = run_cli("report", "--all", "--since", "yesterday", workspace=ws)
    assert (since.returncode, "is not a date" in since.stderr) == (2, True)
    fmt = run_cli("report", seeded.batch_id, "--format", "pdf", workspace=ws)
    assert fmt.returncode == 2
    for result in (both, neither, since, fmt):
        assert "Traceback" not in result.stderr


# -- report --all -----------------------------------------------------------------------


def test_all_summary_has_a_row_per_batch(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path / "ws")
    first = make_batch(workspace)
    second = make_batch(workspace, name="other")
    with open_store(workspace) as store:
        record_pings(store, first.batch_id, TIMELY)
        record_pings(store, second.batch_id, LATE)
        with store.write() as session:  # pretend the first batch is old
            session.execute(
                update(Batch)
                .where(Batch.id == first.batch_id)
                .values(created_at=datetime(2025, 1, 1, tzinfo=UTC))
            )
    result = run_cli("report", "--all", "--format", "json", workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    rows = {row["batch"]: row for row in doc["batches"]}
    assert list(rows) == [first.batch_id, second.batch_id]
    assert rows[first.batch_id]["accepted"] == 4 and rows[first.batch_id]["ok"] is True
    assert rows[second.batch_id]["suppressed"] == 6
    assert rows[second.batch_id]["can_spam_ok"] is False
    assert doc["ok"] is False
    since = run_cli(
        "report", "--all", "--since", "2026-01-01", "-f", "csv", workspace=workspace.root
    )
    table = list(csv.DictReader(io.StringIO(since.stdout)))
    assert [row["batch"] for row in table] == [second.batch_id]
    assert table[0]["pings"] == str(len(LATE))
    check = run_cli("report", "--all", "--check", "-f", "csv", workspace=workspace.root)
    assert check.returncode == 3
    assert second.batch_id in check.stderr and first.batch_id not in check.stderr
    signed = tmp_path / "all.json"
    run_cli("report", "--all", "-o", str(signed), workspace=workspace.root)
    assert run_cli("report", "verify", str(signed), workspace=workspace.root).returncode == 0


# -- deadlines and statistics -----------------------------------------------------------


def test_business_days_skip_weekends() -> None:
    friday = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    assert add_business_days(friday, 1) == datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
    assert add_business_days(friday, 10) == datetime(2026, 12, 4, 15, 30, tzinfo=UTC)
    saturday = datetime(2026, 11, 21, 9, tzinfo=UTC)
    assert add_business_days(saturday, 10) == datetime(2026, 12, 4, 9, tzinfo=UTC)


def test_latency_p99_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 201)]
    stats = build.latency_stats(values)
    assert (stats["min"], stats["median"], stats["p99"], stats["max"]) == (1.0, 100.5, 198.0, 200.0)


# -- status -----------------------------------------------------------------------------


def test_status_shows_lists_batches_pings_and_listener(seeded: Seeded) -> None:
    result = run_cli("status", workspace=seeded.workspace.root)
    assert result.returncode == 5, result.stderr  # the listener is down
    assert result.stderr.startswith("error: listener http://127.0.0.1:")
    out = result.stdout
    assert "customers" in out and seeded.batch_id in out
    assert "2/3" in out  # parts posted
    assert "down" in out
    with open_store(seeded.workspace) as store, store.read() as session:
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        today = session.scalar(
            select(func.count()).select_from(Ping).where(Ping.received_at >= midnight)
        )
    pings_today = out.split("Pings today (UTC)", 1)[1].split("Suppressions", 1)[0]
    assert re.search(rf"total\s*│\s*{today}\s*│", pings_today), pings_today
    suppressions = out.split("Suppressions", 1)[1]
    assert re.search(r"ping\s*│\s*4\s*│", suppressions), suppressions


def test_status_json_matches_the_database(seeded: Seeded) -> None:
    result = run_cli("status", "--json", workspace=seeded.workspace.root)
    assert result.returncode == 5, result.stderr
    facts = json.loads(result.stdout)
    with open_store(seeded.workspace) as store, store.read() as session:
        by_source = dict(
            session.execute(
                select(Suppression.channel, func.count()).group_by(Suppression.channel)
            ).all()
        )
    assert facts["suppressions"] == by_source
    assert [b["id"] for b in facts["recent_batches"]] == [seeded.batch_id]
    assert facts["recent_batches"][0]["parts_posted"] == 2
    assert facts["lists"][0]["name"] == "customers"
    assert datetime.fromisoformat(facts["lists"][0]["created_at"]).tzinfo is not None
    assert facts["listener"]["up"] is False


def test_status_reports_a_running_listener(seeded: Seeded) -> None:
    port = seeded.workspace.settings.http_port
    ours = seeded.workspace.path(seeded.workspace.settings.public_key).read_text().strip()
    with _healthz_server(port, ours):
        result = run_cli("status", workspace=seeded.workspace.root)
    assert result.returncode == 0, result.stderr
    assert f"http://127.0.0.1:{port}/healthz: up" in result.stdout
    assert "status=ok" in result.stdout and "serves this workspace's key" in result.stdout


def test_status_fails_on_a_listener_serving_another_key(seeded: Seeded) -> None:
    port = seeded.workspace.settings.http_port
    theirs = OperatorKey.generate().public_b64
    with _healthz_server(port, theirs):
        result = run_cli("status", "--json", workspace=seeded.workspace.root)
    assert result.returncode == 6, result.stderr
    assert json.loads(result.stdout)["listener"]["key_ok"] is False
    assert "serves another key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


class _healthz_server:
    """A real aiohttp server answering /healthz on a thread, for the status probe."""

    def __init__(self, port: int, key: str) -> None:
        import asyncio

        self.port = port
        self.key = key
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self.loop)

        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def key(_: web.Request) -> web.Response:
            return web.json_response({"key": self.key})

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/dni/v1/key", key)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def __enter__(self) -> _healthz_server:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# -- PostgreSQL -----------------------------------------------------------------------


@pytest.mark.postgres
def test_report_on_postgresql_matches_the_database(pg_url: str, tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path / "ws", database_url=pg_url)
    data = make_batch(workspace)
    with open_store(workspace) as store:
        record_pings(store, data.batch_id, LATE)
        add_parts(store, data.batch_id, posted=1, total=1)
        truth = recount(store, data.batch_id)
    doc = report_json(workspace, data.batch_id)
    assert doc["addresses_hashed"] == truth["hashed"]
    assert doc["suppressions"]["count"] == truth["suppressed"] == 6
    assert doc["pings"]["total"] == sum(truth["by"].values())
    assert doc["latency_seconds"] == expected_latency(LATE)
    assert doc["parts"]["posted"] == 1
    # Buckets are computed in SQL, differently per dialect; 20 days make them daily.
    assert {b["seconds"] for b in doc["timeline"]} == {86400}
    days = {b["start"]: b for b in doc["timeline"]}
    assert sum(b["accepted"] + b["other"] for b in days.values()) == len(LATE)
    assert sum(b["suppressed"] for b in days.values()) == 6
    last = bucket_start(data.created_at + timedelta(hours=9, days=20), 86400)
    assert days[last]["suppressed"] == 1
    target = tmp_path / "pg.html"
    assert (
        run_cli("report", data.batch_id, "-o", str(target), workspace=workspace.root).returncode
        == 0
    )
    assert run_cli("report", "verify", str(target), workspace=workspace.root).returncode == 0


def test_default_format_is_text_on_a_terminal_and_json_in_a_pipe(seeded: Seeded) -> None:
    piped = run_cli("report", seeded.batch_id, workspace=seeded.workspace.root)
    assert json.loads(piped.stdout)["batch"]["id"] == seeded.batch_id
    screen = _run_in_terminal("report", seeded.batch_id, workspace=seeded.workspace.root)
    assert "Pings by channel and outcome" in screen
    assert "\x1b[" in screen  # rich colours a real terminal
    assert not screen.lstrip().startswith("{")


def _run_in_terminal(*args: str, workspace: Path) -> str:
    """Run the CLI with its stdout on a pseudo-terminal; return what it showed."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    command = [sys.executable, "-m", "scrubber", "--workspace", str(workspace), *args]
    with subprocess.Popen(command, stdout=follower, stderr=subprocess.PIPE, env=env) as proc:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return b"".join(chunks).decode("utf-8", "replace")


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=0, max_value=60),
)
def test_business_days_match_counting_day_by_day(start: datetime, days: int) -> None:
    current, counted = start, 0
    while counted < days:
        current += timedelta(days=1)
        counted += current.weekday() < 5
    assert add_business_days(start, days) == current


def test_verify_names_the_generator_of_a_report_from_another_version(
    seeded: Seeded, tmp_path: Path
) -> None:
    from scrubber.report.render_html import render_html

    with open_store(seeded.workspace) as store:
        doc = build.build_report(store, seeded.batch_id)
    assert doc["report"]["generator"].startswith("scrubber ")
    doc["report"]["generator"] = "scrubber 0.0.1"
    signed = sign.sign_report(doc, load_key(seeded.workspace))
    target = tmp_path / "old.html"
    target.write_text(render_html(signed).replace("<h2>Batch</h2>", "<h2>Batch </h2>"))
    result = run_cli("report", "verify", str(target), workspace=seeded.workspace.root)
    assert result.returncode == 1
    assert "it was made by scrubber 0.0.1, this is scrubber" in result.stderr


def test_verify_with_the_workspace_public_key_missing(seeded: Seeded, tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    run_cli("report", seeded.batch_id, "-o", str(target), workspace=seeded.workspace.root)
    public = seeded.workspace.path(seeded.workspace.settings.public_key)
    key_b64 = public.read_text().strip()
    public.unlink()
    result = run_cli("report", "verify", str(target), workspace=seeded.workspace.root)
    assert result.returncode == 1
    assert result.stderr == f"error: cannot read the workspace's public key {public}\n"
    given = run_cli("report", "verify", str(target), "--key", key_b64)
    assert given.returncode == 0, given.stderr
    assert "signed by the key given with --key" in given.stdout


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_report_is_one_snapshot_while_pings_arrive(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    extra = {"database_url": request.getfixturevalue("pg_url")} if backend == "postgresql" else {}
    workspace = make_workspace(tmp_path / "ws", **extra)
    data = make_batch(workspace)
    original = build._removals

    def removals_then_a_ping_lands(session: Any, batch: Any, now: datetime) -> Any:
        found = original(session, batch, now)
        # Another connection commits an opt-out while the report is half built.
        with open_store(workspace) as other:
            record_pings(other, data.batch_id, [("http", "invalid", 1, None)])
        return found

    with open_store(workspace) as store:
        record_pings(store, data.batch_id, TIMELY[:2])
        monkeypatch.setattr(build, "_removals", removals_then_a_ping_lands)
        doc = build.build_report(store, data.batch_id)
        monkeypatch.undo()
        after = build.build_report(store, data.batch_id)
    assert doc["pings"]["total"] == 2 == len(doc["suppressions"]["items"])
    assert sum(b["accepted"] + b["other"] for b in doc["timeline"]) == 2
    assert after["pings"]["total"] == 3


def test_status_fails_when_an_opt_out_waits_too_long(tmp_path: Path) -> None:
    seeded = make_batch(make_workspace(tmp_path / "ws"))
    ws = seeded.workspace
    with open_store(ws) as store:
        record_pings(store, seeded.batch_id, [("http", "accepted", 0, None)])
        _age_pings(store, timedelta(hours=23))
    ours = ws.path(ws.settings.public_key).read_text().strip()
    with _healthz_server(ws.settings.http_port, ours):
        fresh = run_cli("status", workspace=ws.root)
        assert fresh.returncode == 0, fresh.stderr
        with open_store(ws) as store:
            _age_pings(store, timedelta(hours=2))
        late = run_cli("status", "--json", workspace=ws.root)
    assert late.returncode == 7, late.stderr
    assert json.loads(late.stdout)["at_risk"] == 1
    assert "deadline is at risk" in late.stderr


def _age_pings(store: Store, by: timedelta) -> None:
    with store.write() as session:
        for ping in session.scalars(select(Ping)):
            ping.received_at -= by


# -- what an auditor needs to see (#18.5) --------------------------------------


def _import(workspace: Workspace, name: str, addresses: list[str]) -> None:
    source = workspace.root / f"{name}-{secrets.token_hex(2)}.txt"
    source.write_text("\n".join(addresses) + "\n", encoding="utf-8")
    with open_store(workspace) as store:
        lists.import_files(store, name, [source], rejects_path=workspace.root / "rejects.csv")


def _batch_of(workspace: Workspace, names: list[str]) -> str:
    executor = ThreadExecutor(2)
    request = request_from_settings(workspace.settings, names)
    with open_store(workspace) as store:
        try:
            created = create_batch(
                store, workspace.settings, load_key(workspace), request, executor
            )
        finally:
            executor.close()
    return created.batch.id


def test_summary_names_the_operator(seeded: Seeded) -> None:
    result = run_cli("report", "--all", "--format", "md", workspace=seeded.workspace.root)
    assert "| operator | not set (operator_name in scrubber.toml) |" in result.stdout
    config = seeded.workspace.root / "scrubber.toml"
    config.write_text(
        config.read_text("utf-8").replace('operator_name = ""', 'operator_name = "Shop"'),
        "utf-8",
    )
    result = run_cli("report", "--all", "--format", "json", workspace=seeded.workspace.root)
    assert json.loads(result.stdout)["operator"] == {"name": "Shop", "contact": None}
    result = run_cli("report", "--all", "--format", "md", workspace=seeded.workspace.root)
    assert "| operator | Shop |" in result.stdout


def test_report_names_the_operator_and_counts_each_list(tmp_path: Path) -> None:
    result = run_cli(
        "init",
        str(tmp_path / "ws"),
        "--operator-name",
        "Shop & Co <Ltd>",
        "--operator-contact",
        "privacy@shop.example",
        "--response-domain",
        "dni.shop.example",
        "--base-url",
        "https://dni.shop.example",
    )
    assert result.returncode == 0, result.stderr
    workspace = load_workspace(tmp_path / "ws")
    assert workspace.settings.operator_name == "Shop & Co <Ltd>"
    people = [f"p{i}.{secrets.token_hex(3)}@example.org" for i in range(12)]
    _import(workspace, "customers", people[:8])
    _import(workspace, "newsletter", people[4:])  # 4..7 on both lists
    with open_store(workspace) as store:
        lists.suppress(store, [people[0], people[5], people[11]])  # one on both lists
    batch_id = _batch_of(workspace, ["customers", "newsletter"])
    doc = report_json(workspace, batch_id)
    assert doc["operator"] == {"name": "Shop & Co <Ltd>", "contact": "privacy@shop.example"}
    with open_store(workspace) as store, store.read() as s:
        per_list = s.execute(
            text(
                "select l.name, count(*), count(x.address_id) from list_entries e "
                "join lists l on l.id = e.list_id "
                "left join suppressions x on x.address_id = e.address_id group by l.name"
            )
        ).all()
        hashed = s.scalar(
            text("select count(*) from batch_entries where batch_id = :b"), {"b": batch_id}
        )
    assert doc["left_out_suppressed"] == 3
    assert doc["addresses_hashed"] == hashed == 12 - 3
    assert doc["list_counts"] == [
        {"list": name, "listed": listed, "left_out": left, "in_batch": listed - left}
        for name, listed, left in sorted(per_list)
    ]
    assert [(c["listed"], c["left_out"]) for c in doc["list_counts"]] == [(8, 2), (8, 2)]
    page = tmp_path / "r.html"
    assert run_cli("report", batch_id, "-o", str(page), workspace=workspace.root).returncode == 0
    html = page.read_text("utf-8")
    visible = html.split('<script type="application/json"')[0]
    assert "Shop &amp; Co &lt;Ltd&gt;" in visible and "privacy@shop.example" in visible
    assert load_key(workspace).public_b64 in visible  # the full key, not only its fingerprint
    assert "left out, already suppressed</th><td>3</td>" in visible
    assert "<td>newsletter</td><td>8</td><td>2</td><td>6</td>" in visible


def test_old_batches_say_their_counts_were_not_recorded(seeded: Seeded) -> None:
    with open_store(seeded.workspace) as store, store.write() as s:
        s.execute(update(Batch).values(left_out_suppressed=None))
        s.execute(text("update batch_lists set listed = null, left_out = null"))
    doc = report_json(seeded.workspace, seeded.batch_id)
    assert doc["left_out_suppressed"] is None
    assert doc["list_counts"] == [
        {"list": "customers", "listed": None, "left_out": None, "in_batch": None}
    ]
    result = run_cli("report", seeded.batch_id, "--format", "md", workspace=seeded.workspace.root)
    assert "not recorded (an older batch)" in result.stdout


def test_summary_explains_the_pings_not_accepted(seeded: Seeded) -> None:
    result = run_cli("report", seeded.batch_id, "--format", "md", workspace=seeded.workspace.root)
    # TIMELY: 8 received, 4 accepted; 1 duplicate, 2 invalid, 1 rate-limited.
    assert "| pings received | 8 |" in result.stdout
    assert (
        "| not accepted | 4: 1 duplicate (proof accepted before, sent again); 2 invalid "
        "(proof matching no address of this batch); 1 rate-limited (refused: the client "
        "sent too many) |" in result.stdout
    )


def test_batch_report_shows_other_suppressions_while_it_was_out(seeded: Seeded) -> None:
    later, outside = seeded.addresses[-1], seeded.addresses[-2]
    with open_store(seeded.workspace) as store:
        lists.suppress(store, [later], origin="phone call")
        # Suppressed during the batch, but after it expired: not counted.
        lists.suppress(store, [outside])
        with store.write() as s:
            s.execute(
                update(Batch)
                .where(Batch.id == seeded.batch_id)
                .values(expires_at=seeded.created_at + timedelta(days=30))
            )
            address_id = s.scalar(
                text("select id from addresses where canonical = :c"), {"c": outside}
            )
            s.execute(
                update(Suppression)
                .where(Suppression.address_id == address_id)
                .values(suppressed_at=seeded.created_at + timedelta(days=31))
            )
        with store.read() as s:
            truth = s.scalar(
                text(
                    "select count(*) from suppressions x join batch_entries e "
                    "on e.address_id = x.address_id and e.batch_id = :b "
                    "where x.suppressed_at >= :c and x.suppressed_at < :e "
                    "and not (x.channel = 'dni-ping' and x.batch_id = :b)"
                ),
                {
                    "b": seeded.batch_id,
                    "c": seeded.created_at.replace(tzinfo=None),
                    "e": (seeded.created_at + timedelta(days=30)).replace(tzinfo=None),
                },
            )
    doc = report_json(seeded.workspace, seeded.batch_id)
    other = doc["other_suppressions"]
    assert other["count"] == truth == 1  # TIMELY's four ping suppressions are this batch's
    assert other["by_channel"] == {"manual": 1} and other["by_reason"] == {"manual": 1}
    assert other["items"][0]["address"] == scheme.mask(later)
    result = run_cli("report", seeded.batch_id, "--format", "md", workspace=seeded.workspace.root)
    assert "Suppressed by other means while the batch was out" in result.stdout
    assert scheme.mask(later) in result.stdout and later not in result.stdout


def test_timeline_of_pings_within_one_hour_has_minute_bars(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path / "ws")
    data = make_batch(workspace)
    plan: list[tuple[str, str, int, float | None]] = [
        ("http", "accepted", 0, 30.0),
        ("http", "accepted", 0, 600.0),
        ("smtp", "invalid", 0, None),
    ]
    with open_store(workspace) as store:
        record_pings(store, data.batch_id, plan)
    doc = report_json(workspace, data.batch_id)
    timeline = doc["timeline"]
    assert {b["seconds"] for b in timeline} == {60}
    assert sum(b["accepted"] for b in timeline) == 2 and sum(b["other"] for b in timeline) == 1
    minute = bucket_start(data.created_at + timedelta(seconds=600), 60)
    assert {b["start"]: b for b in timeline}[minute]["suppressed"] == 1
    page = tmp_path / "r.html"
    assert (
        run_cli("report", data.batch_id, "-o", str(page), workspace=workspace.root).returncode == 0
    )
    html = page.read_text("utf-8")
    ticks = re.findall(r'class="tick">([^<]+)<', html)
    assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), ticks
    assert "Each bar counts one minute" in html
    for name in ("accepted pings", "other pings", "suppressions"):
        assert re.search(rf"<b>{name}</b>: \w", html), name


@pytest.mark.parametrize(
    ("span", "width"),
    [(0, 60), (47 * 60, 60), (48 * 60, 300), (5 * 3600, 900), (40 * 3600, 3600), (20 * DAY, 86400)],
)
def test_timeline_bucket_is_the_finest_that_keeps_few_bars(
    tmp_path: Path, span: float, width: int
) -> None:
    workspace = make_workspace(tmp_path / "ws")
    data = make_batch(workspace, n=4)
    with open_store(workspace) as store:
        record_pings(store, data.batch_id, [("http", "accepted", 0, span)])
    assert {b["seconds"] for b in report_json(workspace, data.batch_id)["timeline"]} == {width}
