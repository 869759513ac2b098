"""The ledger report (scrubber report ledger) and the facts it reads: list
exports, the operator's deadline table.

Every number the report states is recounted here with plain SQL.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import select, text

from scrubber import scheme
from scrubber.deadlines import LEDGER_DEFAULTS, ledger_rules, parse_limit
from scrubber.errors import ConfigError
from scrubber.store import Store
from scrubber.store.models import Address, Batch, ListExport, Suppression
from scrubber.workspace import load_workspace, open_store
from tests.support import run_cli

SCHEMA = json.loads(files("scrubber.report").joinpath("schema.json").read_text("utf-8"))
PUBLIC = ("--response-domain", "dni.shop.example", "--base-url", "https://dni.shop.example")
MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _workspace(root: Path, *people: str, database_url: str | None = None) -> Path:
    extra = ("--database-url", database_url) if database_url else ()
    assert run_cli("init", str(root), *PUBLIC, *extra).returncode == 0
    source = root / "people.txt"
    source.write_text("".join(p + "\n" for p in people), encoding="utf-8")
    assert run_cli("list", "import", "customers", str(source), workspace=root).returncode == 0
    return root


@pytest.mark.parametrize(
    ("limit", "deadline"),
    [
        ("48 hours", MONDAY + timedelta(hours=48)),
        ("2 days", MONDAY + timedelta(days=2)),
        ("1 day", MONDAY + timedelta(days=1)),
        ("10 business days", MONDAY + timedelta(days=14)),
        ("5 working days", MONDAY + timedelta(days=7)),
        (" 5  working days ", MONDAY + timedelta(days=7)),
    ],
)
def test_limits_parse_to_deadlines(limit: str, deadline: datetime) -> None:
    assert parse_limit(limit)(MONDAY) == deadline


@pytest.mark.parametrize("limit", ["", "48", "two days", "3 fortnights", "-1 days", "1.5 days"])
def test_a_bad_limit_is_refused(limit: str) -> None:
    with pytest.raises(ValueError, match="is not 'N hours'"):
        parse_limit(limit)


def test_the_deadline_table_defaults_and_is_configurable(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    assert run_cli("init", str(root), *PUBLIC).returncode == 0
    config = root / "scrubber.toml"
    assert load_workspace(root).settings.deadlines == LEDGER_DEFAULTS
    assert [r.limit for r in ledger_rules(LEDGER_DEFAULTS)] == [
        "48 hours",
        "2 days",
        "10 business days",
        "10 business days",
        "5 working days",
    ]
    table = config.read_text("utf-8").split("[scrubber.deadlines]")[1]
    config.write_text(
        config.read_text("utf-8").replace(table, '\nGmail = "24 hours"\n"In-house" = "3 days"\n'),
        encoding="utf-8",
    )
    assert load_workspace(root).settings.deadlines == {"Gmail": "24 hours", "In-house": "3 days"}
    config.write_text(config.read_text("utf-8").replace('"3 days"', '"3 weeks"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="'3 weeks' is not"):
        load_workspace(root)
    result = run_cli("status", workspace=root)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "'3 weeks' is not" in result.stderr


def test_every_list_export_is_recorded(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", "a@example.org", "b@example.org", "c@example.org")
    assert run_cli("list", "suppress", "b@example.org", workspace=root).returncode == 0
    before = datetime.now(UTC)
    out = root / "clean.txt"
    assert run_cli("list", "export", "customers", "-o", str(out), workspace=root).returncode == 0
    piped = run_cli("list", "export", "customers", workspace=root)
    assert piped.returncode == 0 and piped.stdout.count("\n") == 2
    assert run_cli("list", "export", "nosuch", workspace=root).returncode != 0
    with open_store(load_workspace(root)) as store, store.read() as s:
        rows = s.execute(
            text(
                "select l.name, e.count, e.started_at, e.finished_at from list_exports e "
                "join lists l on l.id = e.list_id order by e.id"
            )
        ).all()
    assert [(name, count) for name, count, _, _ in rows] == [("customers", 2), ("customers", 2)]
    for _, _, started, finished in rows:
        assert before.replace(tzinfo=None) <= _naive(started) <= _naive(finished)


def test_a_list_with_recorded_exports_can_be_removed(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", "a@example.org")
    assert run_cli("list", "export", "customers", workspace=root).returncode == 0
    removed = run_cli("list", "rm", "customers", workspace=root)
    assert removed.returncode == 0, removed.stderr
    with open_store(load_workspace(root)) as store, store.read() as s:
        assert s.scalar(text("select count(*) from list_exports")) == 0


def _naive(moment: datetime | str) -> datetime:
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


# -- the ledger report ----------------------------------------------------------

DAY = timedelta(days=1)


@dataclass
class Ledger:
    root: Path
    batch_id: str
    t0: datetime  # the batch's creation


def _suppress_at(
    store: Store,
    address: str,
    channel: str,
    reason: str,
    received: datetime,
    committed: datetime,
    origin: str | None = None,
) -> None:
    with store.write() as s:
        address_id = s.scalar(select(Address.id).where(Address.canonical == address))
        if address_id is None:
            found = Address(canonical=address)
            s.add(found)
            s.flush()
            address_id = found.id
        s.add(
            Suppression(
                address_id=address_id,
                suppressed_at=committed,
                channel=channel,
                reason=reason,
                origin=origin,
                received_at=received,
            )
        )


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return _make_ledger(tmp_path)


def _make_ledger(tmp_path: Path, database_url: str | None = None) -> Ledger:
    """Lists customers (six) and leads (two), a batch of customers at t0, suppressions
    before and after it, exports of customers."""
    root = _workspace(tmp_path / "ws", *PEOPLE[:6], database_url=database_url)
    leads = root / "leads.txt"
    leads.write_text("".join(p + "\n" for p in PEOPLE[6:]), encoding="utf-8")
    assert run_cli("list", "import", "leads", str(leads), workspace=root).returncode == 0
    assert run_cli("batch", "create", "customers", workspace=root).returncode == 0
    workspace = load_workspace(root)
    with open_store(workspace) as store:
        with store.read() as s:
            batch_id, t0 = s.execute(select(Batch.id, Batch.created_at)).one()
        # a: before the batch, so the batch stopped sending to it (13 s after the request).
        _suppress_at(
            store,
            PEOPLE[0],
            "one-click",
            "unsubscribe",
            t0 - timedelta(seconds=13),
            t0 - timedelta(seconds=3),
        )
        # b: after the batch; an export 1 h later stops it.
        _suppress_at(
            store, PEOPLE[1], "mailto", "unsubscribe", t0 + DAY, t0 + DAY + timedelta(minutes=1)
        )
        # c: on a list never exported nor batched, 3 days ago: late for the 48 h rules.
        _suppress_at(store, PEOPLE[6], "manual", "manual", t0 - 3 * DAY, t0 - 3 * DAY, "phone")
        # d: imported, its request 400 days old: shown, not judged.
        _suppress_at(
            store,
            PEOPLE[3],
            "import:postmark",
            "hard-bounce",
            t0 - 400 * DAY,
            t0 + timedelta(hours=3),
            "Recipient",
        )
        # e: on no list at all: nothing to stop.
        _suppress_at(store, "stranger@example.net", "dni-ping", "registry", t0 + DAY, t0 + DAY)
        with store.write() as s:
            list_id = s.scalar(text("select id from lists where name = 'customers'"))
            s.add(
                ListExport(
                    list_id=list_id,
                    started_at=t0 + DAY + timedelta(hours=1),
                    finished_at=t0 + DAY + timedelta(hours=1),
                    count=4,
                )
            )
            # An export before b's commit does not stop it.
            s.add(ListExport(list_id=list_id, started_at=t0 + DAY, finished_at=t0 + DAY, count=5))
    return Ledger(root, batch_id, t0)


# Distinct first letters: masked forms (a***@example.org) tell them apart.
PEOPLE = [
    f"{name}@example.org"
    for name in ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
]


def _ledger_json(root: Path, *extra: str) -> dict[str, Any]:
    result = run_cli("report", "ledger", "--format", "json", *extra, workspace=root)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    return document


def _recount(root: Path) -> dict[str, Any]:
    """The ledger's numbers, counted again with plain SQL."""
    with open_store(load_workspace(root)) as store, store.read() as s:
        tally = {
            column: dict(
                s.execute(text(f"select {column}, count(*) from suppressions group by 1")).all()
            )
            for column in ("channel", "reason")
        }
        # Sending stopped: the first export or batch over a list holding the address,
        # started at or after the commit (the earlier of the two).
        stops = s.execute(
            text(
                "select a.canonical, min(t.at) from suppressions x "
                "join addresses a on a.id = x.address_id "
                "join list_entries le on le.address_id = x.address_id "
                "join (select list_id, started_at as at from list_exports union all "
                "      select bl.list_id, b.created_at from batch_lists bl "
                "      join batches b on b.id = bl.batch_id) t "
                "  on t.list_id = le.list_id and t.at >= x.suppressed_at "
                "group by a.canonical"
            )
        ).all()
    return {"tally": tally, "stops": {c: _naive(at) for c, at in stops}}


def test_ledger_numbers_match_the_database(ledger: Ledger) -> None:
    _check_numbers(ledger)


@pytest.mark.postgres
def test_ledger_numbers_match_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    # The stop clock's correlated subqueries and the tallies, on the other dialect.
    _check_numbers(_make_ledger(tmp_path, pg_url))


def _check_numbers(ledger: Ledger) -> None:
    doc = _ledger_json(ledger.root)
    truth = _recount(ledger.root)
    assert doc["suppressions"]["count"] == 5
    assert doc["suppressions"]["by_channel"] == truth["tally"]["channel"]
    assert doc["suppressions"]["by_reason"] == truth["tally"]["reason"]
    assert doc["suppressions"]["by_origin"] == {"-": 3, "Recipient": 1, "phone": 1}
    items = {i["address"]: i for i in doc["items"]}
    assert len(items) == 5  # every address masks differently here
    t0 = ledger.t0
    people = (PEOPLE[0], PEOPLE[1], PEOPLE[6], PEOPLE[3], "stranger@example.net")
    a, b, c, d, e = (items[scheme.mask(x)] for x in people)
    assert (a["stopped_by"], a["commit_seconds"], a["stop_seconds"]) == (
        f"batch {ledger.batch_id}",
        10,
        13,
    )
    assert b["stopped_by"] == "export of customers"
    assert b["stop_seconds"] == 3600 and b["commit_seconds"] == 60
    assert c["stopped_at"] is None and c["stopped_by"] is None and c["stop_seconds"] is None
    assert d["deadlines"] == dict.fromkeys(LEDGER_DEFAULTS, "not judged")
    assert e["stopped_by"] == "on no list" and e["stop_seconds"] == 0
    assert d["stopped_by"] == "export of customers"
    for person, item in zip(people[:4], (a, b, c, d), strict=True):
        assert (None if item["stopped_at"] is None else _naive(item["stopped_at"])) == truth[
            "stops"
        ].get(person)
    # c waits since 3 days: past 48 hours and 2 days, within 5 working days.
    assert c["deadlines"] == {
        "Gmail": "late",
        "Yahoo": "late",
        "CAN-SPAM": "pending",
        "CASL": "pending",
        "Australia Spam Act": "pending",
    }
    gmail = next(r for r in doc["deadlines"] if r["rule"] == "Gmail")
    assert [gmail[k] for k in ("checked", "met", "late", "pending", "not_judged")] == [
        4,
        3,
        1,
        0,
        1,
    ]
    assert doc["ok"] is False
    commit = doc["clocks"]["commit_seconds"]
    assert commit["count"] == 5 and commit["max"] == seconds_between(
        t0 - 400 * DAY, t0 + timedelta(hours=3)
    )
    assert doc["clocks"]["stop_seconds"]["count"] == 4
    assert not any(person in json.dumps(doc) for person in PEOPLE)


def seconds_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def test_ledger_is_signed_in_every_signed_format(ledger: Ledger, tmp_path: Path) -> None:
    files = [tmp_path / f"ledger.{suffix}" for suffix in ("json", "html", "md")]
    outputs = [arg for f in files for arg in ("-o", str(f))]
    result = run_cli(
        "report", "ledger", *outputs, "-o", str(tmp_path / "l.csv"), workspace=ledger.root
    )
    assert result.returncode == 0, result.stderr
    for path in files:
        verified = run_cli("report", "verify", str(path), workspace=ledger.root)
        assert verified.returncode == 0, verified.stderr
        assert "the unchanged report on the suppression ledger" in verified.stdout
    html = files[1].read_text("utf-8")
    files[1].write_text(html.replace("export of customers", "export of newsletter", 1), "utf-8")
    assert run_cli("report", "verify", str(files[1]), workspace=ledger.root).returncode == 1
    rows = list(csv.DictReader(io.StringIO((tmp_path / "l.csv").read_text("utf-8"))))
    assert len(rows) == 5
    assert list(rows[0])[-5:] == list(LEDGER_DEFAULTS)
    assert {r["stopped_by"] for r in rows} >= {"export of customers", "on no list"}


def test_ledger_since_and_configured_rules(ledger: Ledger) -> None:
    since = (ledger.t0 - DAY).strftime("%Y-%m-%dT%H:%M:%S")
    config = ledger.root / "scrubber.toml"
    text_ = config.read_text("utf-8")
    table = text_.split("[scrubber.deadlines]")[1]
    config.write_text(text_.replace(table, '\n"House rule" = "1 hours"\n'), "utf-8")
    doc = _ledger_json(ledger.root, "--since", since)
    # Committed at or after t0 - 1 day: all but c (3 days before).
    assert doc["suppressions"]["count"] == 4
    assert scheme.mask(PEOPLE[6]) not in {i["address"] for i in doc["items"]}
    assert doc["report"]["since"].startswith(since)
    assert [r["rule"] for r in doc["deadlines"]] == ["House rule"]
    house = doc["deadlines"][0]
    # a stopped 13 s after its request, b 1 h after, e at once; d is not judged.
    assert [house[k] for k in ("met", "late", "pending", "not_judged")] == [3, 0, 0, 1]
    assert doc["ok"] is True
    assert (
        run_cli("report", "ledger", "--since", since, "--check", workspace=ledger.root).returncode
        == 0
    )
    checked = run_cli("report", "ledger", "--check", "--format", "json", workspace=ledger.root)
    assert checked.returncode == 3
    assert "House rule deadline (1 hours) missed for 1 suppression(s)" in checked.stderr


def test_ledger_bad_input(ledger: Ledger) -> None:
    for args in (("--since", "yesterday"), ("--format", "pdf"), ("-o", "x.pdf")):
        result = run_cli("report", "ledger", *args, workspace=ledger.root)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr and result.stderr.count("\n") <= 3, result.stderr


def test_empty_ledger_is_a_valid_passing_report(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    assert run_cli("init", str(root), *PUBLIC).returncode == 0
    doc = _ledger_json(root)
    assert doc["suppressions"]["count"] == 0 and doc["items"] == [] and doc["ok"] is True
    assert doc["clocks"]["commit_seconds"]["max"] is None
