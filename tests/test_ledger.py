"""The suppression ledger: what every suppression records, lifts, migration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scrubber import ledger, lists
from scrubber.errors import NotFoundError, UsageError
from scrubber.ledger import Channel, Entry, Reason
from scrubber.store import Store
from scrubber.store.models import Suppression, SuppressionLift
from scrubber.workspace import Workspace
from tests.support import run_cli

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _imported(canonical: str, when: datetime, reason: Reason = Reason.HARD_BOUNCE) -> Entry:
    return Entry(
        canonical,
        ledger.import_channel("postmark"),
        reason,
        when,
        origin="Recipient",
        request_id="dump.csv:2",
        evidence="dump.csv",
    )


def test_manual_suppression_records_channel_reason_and_times(store: Store) -> None:
    summary = lists.suppress(store, ["Jane@Example.com", "jane@example.com"], origin="desk")
    assert (summary.added, summary.already) == (1, 0)
    (row,) = ledger.rows(store)
    assert (row.canonical, row.channel, row.reason, row.origin) == (
        "jane@example.com",
        "manual",
        "manual",
        "desk",
    )
    assert row.received_at <= row.suppressed_at
    again = lists.suppress(store, ["jane@example.com"])
    assert (again.added, again.already) == (0, 1)


def test_reimport_is_idempotent_and_keeps_the_earliest_time(store: Store) -> None:
    first = ledger.record(store, [_imported("a@example.com", T0)])
    assert (first.added, first.already, first.earlier) == (1, 0, 0)
    same = ledger.record(store, [_imported("a@example.com", T0)])
    assert (same.added, same.already, same.earlier) == (0, 1, 0)
    earlier = ledger.record(store, [_imported("a@example.com", T0 - timedelta(days=3))])
    assert earlier.earlier == 1
    later = ledger.record(store, [_imported("a@example.com", T0 + timedelta(days=3))])
    assert later.earlier == 0
    (row,) = ledger.rows(store)
    assert row.received_at == T0 - timedelta(days=3)
    assert row.channel == "import:postmark"
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1


def test_first_channel_stands_when_another_channel_repeats_it(store: Store) -> None:
    lists.suppress(store, ["b@example.com"])
    summary = ledger.record(store, [_imported("b@example.com", T0 - timedelta(days=300))])
    assert (summary.added, summary.already, summary.earlier) == (0, 1, 0)
    (row,) = ledger.rows(store)
    assert row.channel == "manual"


def test_within_one_call_the_earliest_request_wins(store: Store) -> None:
    ledger.record(
        store,
        [
            _imported("c@example.com", T0, Reason.COMPLAINT),
            _imported("c@example.com", T0 - timedelta(hours=1), Reason.HARD_BOUNCE),
        ],
    )
    (row,) = ledger.rows(store)
    assert (row.received_at, row.reason) == (T0 - timedelta(hours=1), "hard-bounce")


def test_a_manual_suppression_is_lifted_only_with_a_reason_and_the_lift_recorded(
    store: Store,
) -> None:
    lists.suppress(store, ["d@example.com"], origin="typo")
    with pytest.raises(UsageError, match="reason"):
        ledger.lift(store, "d@example.com", "  ")
    lifted = ledger.lift(store, "D@example.com", "entered by mistake")
    assert lifted.channel == "manual"
    assert list(ledger.rows(store)) == []
    ((canonical, lift),) = ledger.lifts(store)
    assert canonical == "d@example.com"
    assert (lift.lift_reason, lift.channel, lift.origin) == ("entered by mistake", "manual", "typo")
    with pytest.raises(NotFoundError):
        ledger.lift(store, "d@example.com", "again")


def test_other_channels_are_permanent(store: Store) -> None:
    ledger.record(
        store, [Entry("e@example.com", Channel.ONE_CLICK, Reason.UNSUBSCRIBE, T0, origin="news")]
    )
    with pytest.raises(UsageError, match="only a manual suppression"):
        ledger.lift(store, "e@example.com", "customer asked")
    assert [r.canonical for r in ledger.rows(store)] == ["e@example.com"]
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(SuppressionLift)) == 0


def test_rows_since_and_paging(store: Store) -> None:
    ledger.record(store, [_imported(f"p{i}@example.com", T0) for i in range(7)])
    assert len(list(ledger.rows(store, page=3))) == 7
    assert list(ledger.rows(store, since=datetime.now(UTC) + timedelta(days=1))) == []


@pytest.mark.parametrize(
    ("peer", "masked"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
        ("[2001:db8::1]", "2001:db8::/48"),
        ("local", "local"),
    ],
)
def test_client_addresses_are_masked_to_their_network(peer: str, masked: str) -> None:
    assert ledger.mask_client(peer) == masked


def test_migration_turns_old_rows_into_ledger_rows(tmp_path: Path) -> None:
    """0005: a ping's suppression takes its ping's time, channel and masked peer."""
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as old:
        old.migrate("0003")
        with old.engine.begin() as conn:
            for sql in (
                "INSERT INTO addresses (id, canonical) VALUES (1, 'a@x.example'), "
                "(2, 'b@x.example')",
                "INSERT INTO salt_epochs VALUES (1, x'00', 1, 8, 1, '2025-01-01', '2026-01-01')",
                "INSERT INTO batches (id, created_at, epoch_id, salt, t, m, p, tag_length, token, "
                "newsgroup, respond_http, respond_smtp, expires_at, key_public, count, "
                "parts_total) VALUES ('b1', '2025-01-01', 1, x'00', 1, 8, 1, 8, 'tok', 'g', "
                "'h', 's', '2026-01-01', 'k', 1, 1)",
                "INSERT INTO pings (id, token, batch_id, proof, outcome, channel, peer, "
                "address_id, received_at, committed_at) VALUES (5, 'tok', 'b1', x'01', "
                "'accepted', 'smtp', '198.51.100.9', 1, '2025-02-01 10:00:00.000000', "
                "'2025-02-01 10:00:01.000000')",
                "INSERT INTO suppressions VALUES (1, '2025-02-01 10:00:01.000000', 'ping', "
                "'b1', 5)",
                "INSERT INTO suppressions VALUES (2, '2025-02-02 09:00:00.000000', 'manual', "
                "NULL, NULL)",
            ):
                conn.exec_driver_sql(sql)
        old.migrate()
        ping, manual = sorted(ledger.rows(old), key=lambda r: r.canonical)
    assert (ping.channel, ping.reason, ping.origin, ping.client, ping.request_id) == (
        "dni-ping",
        "registry",
        "smtp",
        "198.51.100.0/24",
        "5",
    )
    assert ping.received_at == datetime(2025, 2, 1, 10, 0, tzinfo=UTC)
    assert ping.batch_id == "b1"
    assert (manual.channel, manual.reason) == ("manual", "manual")
    assert manual.received_at == manual.suppressed_at


def test_cli_suppress_then_lift_with_reason(workspace: Workspace) -> None:
    root = workspace.root
    made = run_cli("list", "suppress", "Jane@Example.com", "--origin", "helpdesk", workspace=root)
    assert made.returncode == 0, made.stderr
    no_reason = run_cli("suppress", "lift", "jane@example.com", workspace=root)
    assert no_reason.returncode == 2
    lifted = run_cli(
        "suppress", "lift", "jane@example.com", "--reason", "wrong person", workspace=root
    )
    assert lifted.returncode == 0, lifted.stderr
    assert "jane@" not in lifted.stdout
    gone = run_cli("suppress", "lift", "jane@example.com", "--reason", "x", workspace=root)
    assert gone.returncode == 1
    assert gone.stderr.startswith("error: ") and len(gone.stderr.splitlines()) == 1
    shown = run_cli("suppress", "lifts", workspace=root)
    assert "wrong person" in shown.stdout and "helpdesk" in shown.stdout
    assert "jane@example.com" not in shown.stdout
