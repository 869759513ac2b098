"""Suppression imports from ESP/list-manager exports, and exports back.

The fixtures in tests/esp_exports/ follow each service's documented columns.
"""

from __future__ import annotations

import gzip
import hashlib
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scrubber import esp, ledger, lists
from scrubber.errors import InputFileError
from scrubber.store import Store
from scrubber.workspace import Workspace
from tests.support import run_cli

EXPORTS = Path(__file__).parent / "esp_exports"


def _by_address(store: Store) -> dict[str, ledger.Row]:
    return {row.canonical: row for row in ledger.rows(store)}


def test_postmark_reasons_origins_times_and_rejects(store: Store) -> None:
    summary = esp.import_files(store, "postmark", [EXPORTS / "postmark.csv"])
    assert (summary.rows, summary.added) == (6, 4)
    assert [(r.line, r.reason) for r in summary.rejects] == [
        (6, "no-at-sign"),
        (7, "unknown SuppressionReason 'Vanished'"),
    ]
    rows = _by_address(store)
    bounce = rows["bounce.me@example.com"]
    assert (bounce.channel, bounce.reason, bounce.origin) == (
        "import:postmark",
        "hard-bounce",
        "Recipient",
    )
    assert bounce.received_at == datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
    assert bounce.request_id == "postmark.csv:2"
    assert rows["spam@example.com"].reason == "complaint"
    assert rows["left@example.com"].reason == "unsubscribe"
    assert rows["admin@example.com"].reason == "manual"


def test_reimport_is_idempotent_and_keeps_the_earliest_time(store: Store) -> None:
    esp.import_files(store, "postmark", [EXPORTS / "postmark.csv"])
    again = esp.import_files(store, "postmark", [EXPORTS / "postmark.csv"])
    assert (again.added, again.already, again.earlier) == (0, 4, 0)
    # The JSON dump has the same address a month earlier, and one new one.
    older = esp.import_files(store, "postmark", [EXPORTS / "postmark.json"])
    assert (older.added, older.earlier) == (1, 1)
    rows = _by_address(store)
    assert rows["bounce.me@example.com"].received_at == datetime(2024, 2, 1, 10, tzinfo=UTC)
    assert len(rows) == 5


@pytest.mark.parametrize(
    ("source", "files", "expected"),
    [
        (
            "ses",
            ["ses.csv", "ses.jsonl"],
            {
                "bounced@example.com": "hard-bounce",
                "complained@example.com": "complaint",
                "nd@example.com": "hard-bounce",
                "nd2@example.com": "complaint",
            },
        ),
        (
            "mailgun",
            ["mailgun-bounces.csv", "mailgun-unsubscribes.csv", "mailgun-complaints.csv"],
            {
                "hard@example.com": "hard-bounce",
                "unsub@example.com": "unsubscribe",
                "complaint@example.com": "complaint",
            },
        ),
        (
            "sendgrid",
            ["sendgrid-unsubscribes.csv", "sendgrid-bounces.csv", "sendgrid-spam.csv"],
            {
                "gu@example.com": "unsubscribe",
                "sb@example.com": "hard-bounce",
                "sp@example.com": "complaint",
            },
        ),
        ("listmonk", ["listmonk.csv"], {"blocked@example.com": "unsubscribe"}),
        (
            "mautic",
            ["mautic.csv"],
            {
                "mu@example.com": "unsubscribe",
                "mb@example.com": "hard-bounce",
                "mm@example.com": "manual",
            },
        ),
        (
            "mailchimp",
            ["mailchimp-unsubscribed.csv", "mailchimp-cleaned.csv"],
            {"chimp@example.com": "unsubscribe", "cleaned@example.com": "hard-bounce"},
        ),
    ],
)
def test_each_service_maps_its_reasons(
    store: Store, source: str, files: list[str], expected: dict[str, str]
) -> None:
    summary = esp.import_files(store, source, [EXPORTS / f for f in files])
    rows = _by_address(store)
    assert {a: r.reason for a, r in rows.items()} == expected
    assert {r.channel for r in rows.values()} == {f"import:{source}"}
    assert summary.added == len(expected)


def test_service_times_are_read_in_their_formats(store: Store) -> None:
    esp.import_files(store, "mailgun", [EXPORTS / "mailgun-bounces.csv"])
    esp.import_files(store, "sendgrid", [EXPORTS / "sendgrid-unsubscribes.csv"])
    esp.import_files(store, "listmonk", [EXPORTS / "listmonk.csv"])
    rows = _by_address(store)
    assert rows["hard@example.com"].received_at == datetime(2022, 10, 21, 11, 2, 55, tzinfo=UTC)
    assert rows["gu@example.com"].received_at == datetime.fromtimestamp(1700000000, UTC)
    assert rows["blocked@example.com"].received_at == datetime(2023, 6, 1, 10, tzinfo=UTC)


def test_bad_rows_are_rejected_by_line_and_nothing_else_is_lost(store: Store) -> None:
    summary = esp.import_files(store, "ses", [EXPORTS / "ses.csv"])
    assert [(r.line, r.reason) for r in summary.rejects] == [
        (3, "unknown reason 'UNSUBSCRIBE' (BOUNCE or COMPLAINT)")
    ]
    mautic = esp.import_files(store, "mautic", [EXPORTS / "mautic.csv"])
    assert [(r.line, r.reason) for r in mautic.rejects] == [
        (5, "unknown do-not-contact reason '7' (1, 2 or 3)")
    ]
    assert len(_by_address(store)) == 5


def test_a_file_without_the_services_columns_is_refused_whole(store: Store) -> None:
    lists.suppress(store, ["kept@example.com"])
    with pytest.raises(InputFileError, match="not a postmark export: it needs the columns"):
        esp.import_files(
            store, "postmark", [EXPORTS / "postmark.csv", EXPORTS / "unknown-columns.csv"]
        )
    assert list(_by_address(store)) == ["kept@example.com"]


def test_gzip_and_generic_csv(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "mine.csv.gz"
    path.write_bytes(
        gzip.compress(b"address,reason,origin\nG@Example.com,complaint,partner\nh@example.com,,\n")
    )
    esp.import_files(store, "csv", [path])
    rows = _by_address(store)
    assert (rows["g@example.com"].reason, rows["g@example.com"].origin) == ("complaint", "partner")
    assert rows["h@example.com"].reason == "unsubscribe"


def test_exports_in_each_format(store: Store) -> None:
    esp.import_files(store, "postmark", [EXPORTS / "postmark.csv"])
    ours = list(esp.export_lines(store, "csv"))
    assert ours[0] == "address,channel,reason,origin,received_at,suppressed_at"
    assert any(
        line.startswith(
            "bounce.me@example.com,import:postmark,hard-bounce,Recipient,2024-03-01T15:00:00Z,"
        )
        for line in ours
    )
    postmark = list(esp.export_lines(store, "postmark"))
    assert "spam@example.com,SpamComplaint,2024-03-02T08:30:00Z" in postmark
    ses = list(esp.export_lines(store, "ses"))
    assert ses[0] == "email,reason" and "bounce.me@example.com,BOUNCE" in ses
    assert "left@example.com,COMPLAINT" in ses
    assert next(esp.export_lines(store, "sendgrid")) == "email,created"
    assert next(esp.export_lines(store, "mailgun")) == "address,tags,created_at"
    md5 = list(esp.export_lines(store, "md5"))
    assert hashlib.md5(b"spam@example.com").hexdigest() in md5
    assert len(md5) == 4 and all(len(d) == 32 for d in md5)
    assert all(len(d) == 128 for d in esp.export_lines(store, "sha512"))
    future = datetime(2999, 1, 1, tzinfo=UTC)
    assert list(esp.export_lines(store, "sha256", since=future)) == []


def test_round_trip_through_our_csv(store: Store, tmp_path: Path) -> None:
    esp.import_files(store, "mautic", [EXPORTS / "mautic.csv"])
    path = tmp_path / "ledger.csv"
    path.write_text("\n".join(esp.export_lines(store, "csv")) + "\n")
    other = Store(f"sqlite:///{tmp_path / 'other.sqlite'}")
    other.migrate()
    try:
        esp.import_files(other, "csv", [path])
        theirs = {a: (r.reason, r.origin, r.received_at) for a, r in _by_address(other).items()}
    finally:
        other.close()
    mine = {a: (r.reason, r.origin, r.received_at) for a, r in _by_address(store).items()}
    assert theirs == mine


def test_cli_import_and_export(workspace: Workspace, tmp_path: Path) -> None:
    root = workspace.root
    done = run_cli(
        "suppress", "import", "--from", "postmark", str(EXPORTS / "postmark.csv"), workspace=root
    )
    assert done.returncode == 0, done.stderr
    assert "4 suppressed" in done.stdout
    assert "postmark.csv:6: no-at-sign" in done.stderr
    assert "not-an-address" not in done.stderr
    out = tmp_path / "out.sha256"
    exported = run_cli("suppress", "export", "--format", "sha256", "-o", str(out), workspace=root)
    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert len(out.read_text().split()) == 4
    bad = run_cli("suppress", "export", "--since", "yesterday", workspace=root)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --since")
    refused = run_cli(
        "suppress", "import", "--from", "ses", str(EXPORTS / "unknown-columns.csv"), workspace=root
    )
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
