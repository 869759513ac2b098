"""No opt-out silently missed: an address protected after a batch was scanned
is looked up in that batch on the next run, fetching only the part its tag
falls in; batches no longer usable (forged, expired) are left alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scrubber.keys import OperatorKey
from scrubber.responder.ping import PingConfig
from scrubber.responder.recheck import recheck
from scrubber.responder.run import RunResult, run_once
from scrubber.responder.store import ResponderStore, add_addresses, awaiting_recheck
from scrubber.transport.spool import SpoolSource
from tests.responder_support import (
    BatchSpec,
    SenderEndpoint,
    batch_articles,
    part_holding,
    write_spool,
)
from tests.support import run_cli

ALICE = "alice@example.org"
BOB = "bob@example.net"
NO_WAIT = PingConfig(retries=0, use_smtp=False, allow_private_http=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResponderStore]:
    opened = ResponderStore.open(tmp_path / "responder.db")
    yield opened
    opened.close()


def run(store: ResponderStore, spool: Path) -> RunResult:
    return run_once(store, lambda: SpoolSource(spool), ping_config=NO_WAIT)


def test_address_added_after_a_scan_is_found_in_the_batch_seen_before(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, [BOB])
    spec = BatchSpec(key, sender.base)
    articles = batch_articles(spec, [ALICE, BOB], parts=4)
    write_spool(tmp_path / "spool", articles)
    first = run(store, tmp_path / "spool")
    assert first.scan is not None and first.scan.matches == 1
    assert sender.pings == [[spec.proof(BOB)]]

    add_addresses(store, [ALICE])
    second = run(store, tmp_path / "spool")

    assert second.scan is not None and second.scan.articles == 0  # nothing new posted
    assert second.recheck is not None
    assert second.recheck.batches == 1 and second.recheck.matches == 1
    assert second.recheck.hashed == 1  # BOB's digest was cached
    # Only the part ALICE's tag falls in, not the whole batch.
    assert second.recheck.bodies == {spec.batch_id: 1}
    assert part_holding(spec, articles, ALICE) >= 1
    assert sender.pings == [[spec.proof(BOB)], [spec.proof(ALICE)]]
    assert awaiting_recheck(store) == {}

    third = run(store, tmp_path / "spool")
    assert third.recheck is None and third.pings.requests == 0


def test_address_protected_before_the_batch_arrived_is_not_looked_up_twice(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, [ALICE])
    spec = BatchSpec(key, sender.base)
    write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=3))
    result = run(store, tmp_path / "spool")
    assert result.scan is not None and result.scan.matches == 1
    assert result.recheck is not None and result.recheck.batches == 0
    assert result.recheck.articles == 0  # the overview was not even read again
    assert sender.pings == [[spec.proof(ALICE)]]


def test_forged_and_expired_batches_are_not_looked_through_again(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, [BOB])
    victim = SenderEndpoint(OperatorKey.generate().public_raw).start()
    try:
        forged = BatchSpec(key, victim.base)  # the host serves another key
        soon = BatchSpec(key, sender.base, expires=datetime.now(UTC) + timedelta(hours=1))
        write_spool(tmp_path / "spool", batch_articles(forged, [ALICE, BOB], parts=2))
        write_spool(tmp_path / "spool", batch_articles(soon, [ALICE, BOB], parts=2))
        run(store, tmp_path / "spool")
        add_addresses(store, [ALICE])
        later = datetime.now(UTC) + timedelta(hours=2)  # the second batch has expired
        source = SpoolSource(tmp_path / "spool")
        report = recheck(store, source, now=later)
    finally:
        victim.stop()
    assert report is not None and report.batches == 0 and report.bodies_fetched == 0
    assert victim.pings == []


def test_cli_add_says_what_the_next_scan_looks_through(
    key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    env = {"SCRUBBER_RESPONDER_DB": str(tmp_path / "r.db")}
    spec = BatchSpec(key, sender.base)
    write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=3))
    scan = [
        "responder",
        "scan",
        "--allow-private",
        "--spool",
        str(tmp_path / "spool"),
        "--no-smtp",
        "--ping-delay",
        "0",
    ]
    assert run_cli("responder", "add", BOB, env=env).returncode == 0
    assert run_cli(*scan, env=env).returncode == 0
    added = run_cli("responder", "add", ALICE, env=env)
    assert added.returncode == 0, added.stderr
    assert "the next scan looks through 1 batches seen earlier" in added.stdout
    scanned = run_cli(*scan, env=env)
    assert scanned.returncode == 0, scanned.stderr
    assert "looked through 1 earlier batches" in scanned.stdout
    assert "1 matches" in scanned.stdout and "pinged 1 proofs" in scanned.stdout
    assert sender.pings == [[spec.proof(ALICE)]]
