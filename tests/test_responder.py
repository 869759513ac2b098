"""The reference responder against signed batches in a spool and sender
endpoints on real sockets: matching, bodies fetched, caps, key binding,
tampering, retries, SMTP fallback, escalation, and the CLI."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scrubber import scheme
from scrubber.errors import ResponderError
from scrubber.keys import OperatorKey, encode_public
from scrubber.responder.domain import DnsConfig
from scrubber.responder.models import CachedDigest, Match, SeenBatch
from scrubber.responder.ping import PingConfig
from scrubber.responder.report import key_reports
from scrubber.responder.run import RunResult, run, run_once, watch
from scrubber.responder.scan import pings_due
from scrubber.responder.store import ResponderStore, add_addresses, list_protected
from scrubber.store import Store
from scrubber.transport.spool import SpoolSource
from tests.net_support import Dnsmasq, dni_record
from tests.responder_support import (
    BatchSpec,
    SenderEndpoint,
    SmtpSink,
    batch_articles,
    part_holding,
    write_spool,
)
from tests.support import free_port, run_cli

ALICE = "alice@example.org"
SPELLINGS = ["Alice@Example.ORG", "alice+news@example.org", " alice@EXAMPLE.org. "]
NO_WAIT = PingConfig(retries=2, backoff=0.01, use_smtp=False, allow_private_http=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResponderStore]:
    opened = ResponderStore.open(tmp_path / "responder.db")
    yield opened
    opened.close()


def scan_spool(store: ResponderStore, spool: Path, config: PingConfig = NO_WAIT) -> RunResult:
    return run_once(store, lambda: SpoolSource(spool), ping_config=config)


def test_add_keeps_only_canonical_forms_and_folds_spellings(store: ResponderStore) -> None:
    result = add_addresses(store, [*SPELLINGS, "J.Doe@GoogleMail.com", "not an address"])
    assert result.added == [ALICE, "jdoe@gmail.com"]
    assert result.known == []
    assert result.rejected == [("***", "whitespace")]
    assert list_protected(store) == [ALICE, "jdoe@gmail.com"]
    assert add_addresses(store, ["ALICE@example.org"]).known == [ALICE]
    raw = Path(store.engine.url.database or "").read_bytes()
    assert b"J.Doe" not in raw and b"alice+news" not in raw


def test_scan_fetches_first_part_and_the_part_holding_the_tag_then_pings_once(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, ["Alice+x@EXAMPLE.org"])
    spec = BatchSpec(key, sender.base)
    articles = batch_articles(spec, [ALICE, "other@example.org"], parts=4)
    holder = part_holding(spec, articles, ALICE)
    write_spool(tmp_path / "spool", articles)

    result = scan_spool(store, tmp_path / "spool")

    assert result.error is None and result.scan is not None
    assert result.scan.articles == 4
    assert result.scan.bodies_fetched == (1 if holder == 1 else 2)
    assert result.scan.matches == 1
    assert sender.pings == [[spec.proof(ALICE)]]
    assert result.pings.delivered == 1 and result.pings.pending == 0

    again = scan_spool(store, tmp_path / "spool")
    assert again.scan is not None and again.scan.articles == 0
    assert again.scan.bodies_fetched == 0
    assert sender.pings == [[spec.proof(ALICE)]]


def test_parts_arriving_in_a_later_scan_reuse_the_batch_and_cached_digests(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, [ALICE, "bob@example.net", "carol@example.com"])
    spec = BatchSpec(key, sender.base)
    listed = [ALICE, "bob@example.net", "carol@example.com"]
    articles = batch_articles(spec, listed, parts=3)
    write_spool(tmp_path / "spool", articles[:1])
    first = scan_spool(store, tmp_path / "spool")
    assert first.scan is not None and first.scan.hashed == 3
    write_spool(tmp_path / "spool", articles[1:], later=True)
    second = scan_spool(store, tmp_path / "spool")
    assert second.scan is not None and second.scan.hashed == 0
    sent = sorted(p for request in sender.pings for p in request)
    assert sent == sorted(spec.proof(a) for a in listed)


def test_forged_batch_pointing_at_a_host_with_another_key_gets_no_ping(
    store: ResponderStore, key: OperatorKey, tmp_path: Path
) -> None:
    victim = SenderEndpoint(OperatorKey.generate().public_raw).start()
    try:
        add_addresses(store, [ALICE])
        spec = BatchSpec(key, victim.base)  # signed by `key`, pointing at the victim
        write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=1))
        result = scan_spool(store, tmp_path / "spool")
        assert victim.key_requests == 1
        assert victim.pings == []
        assert result.pings.refused == 1 and result.pings.pending == 0
        assert any("key binding failed" in f for f in result.pings.failures)
        (row,) = key_reports(store)
        assert row.forged_batches == 1 and row.pings_sent == 0
        # A later run does not try again.
        assert scan_spool(store, tmp_path / "spool").pings.requests == 0
        assert victim.pings == []
    finally:
        victim.stop()


def test_a_key_the_sender_lists_as_retired_binds_its_batch_and_junk_entries_are_skipped(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    sender.key = OperatorKey.generate().public_raw  # rotated since the batch was signed
    sender.retired = [{"key": "junk"}, "junk", {}, {"key": encode_public(key.public_raw)}]
    add_addresses(store, [ALICE])
    spec = BatchSpec(key, sender.base)
    write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=1))
    result = scan_spool(store, tmp_path / "spool")
    assert result.pings.delivered == 1, result.pings.failures
    assert sender.pings == [[spec.proof(ALICE)]]


def test_tampered_part_is_skipped_with_a_reason_and_the_rest_still_works(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    spec = BatchSpec(key, sender.base)
    listed = [f"user{i}@example.net" for i in range(40)]
    add_addresses(store, listed)
    articles = batch_articles(spec, listed, filler=2000, parts=4)
    where = {a: part_holding(spec, articles, a) for a in listed}
    assert 3 in where.values() and set(where.values()) - {3}
    raw = bytearray(articles[2])
    cut = raw.index(b"\n\n", raw.index(b"Digest: ")) + 2
    raw[cut + 5] = ord("A") if raw[cut + 5] != ord("A") else ord("B")
    articles[2] = bytes(raw)
    write_spool(tmp_path / "spool", articles)

    result = scan_spool(store, tmp_path / "spool")

    assert result.scan is not None
    assert any("part 3" in s and "signature does not verify" in s for s in result.scan.skipped)
    sent = sorted(p for request in sender.pings for p in request)
    assert sent == sorted(spec.proof(a) for a, part in where.items() if part != 3)


def test_garbage_and_foreign_articles_in_the_group_are_passed_over(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, [ALICE])
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "junk.rnews").write_bytes(b"\x00\xffnot an article at all")
    (spool / "chat.rnews").write_bytes(
        b"Newsgroups: alt.dni.batches\nMessage-ID: <x@y>\nSubject: hello\n\nhi\n"
    )
    forged_subject = (
        b"Newsgroups: alt.dni.batches\nMessage-ID: <f@y>\n"
        b"Subject: [DNI] batch zz part 1/1 range 0000000000000000-ffffffffffffffff\n\ngarbage\n"
    )
    (spool / "fake.rnews").write_bytes(forged_subject)
    spec = BatchSpec(key, sender.base)
    write_spool(spool, batch_articles(spec, [ALICE], parts=2))

    result = scan_spool(store, spool)

    assert result.error is None and result.scan is not None
    assert any("batch zz" in s for s in result.scan.skipped)
    assert sender.pings == [[spec.proof(ALICE)]]


def test_batch_over_the_memory_cap_is_refused_without_hashing(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, [ALICE])
    # The header claims m = 16 GiB: hashing would take minutes or fail; refusing costs nothing.
    spec = BatchSpec(key, sender.base, params=scheme.Params(t=1, m=16 * 1024 * 1024, p=1))
    write_spool(tmp_path / "spool", [_article_with_random_tags(spec)])
    started = time.monotonic()
    result = scan_spool(store, tmp_path / "spool")
    assert time.monotonic() - started < 5
    assert result.scan is not None and result.scan.hashed == 0
    assert any("m=16777216 KiB is above the cap 65536" in s for s in result.scan.skipped)
    assert result.scan.bodies_fetched == 1
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(CachedDigest)) == 0
    assert sender.pings == [] and sender.key_requests == 0


def _article_with_random_tags(spec: BatchSpec) -> bytes:
    from scrubber import article

    blob = b"".join(sorted({os.urandom(8) for _ in range(50)}))
    header = article.BatchHeader(
        batch_id=spec.batch_id,
        salt=spec.salt,
        params=dataclasses.replace(spec.params, tag_length=8),
        total=len(blob) // 8,
        respond=scheme.RespondTo(
            http=f"{spec.http_base}/dni/v1/ping/{spec.token}",
            smtp=f"dni-{spec.token}@dni.example.test",
        ),
        expires=spec.expires.replace(microsecond=0),
        key=spec.key.public_raw,
    )
    meta = article.part_meta(header, 1, 1, blob)
    date = datetime.now(UTC)
    return article.render_article(
        meta, blob, spec.key, newsgroup="alt.dni.batches", domain="t.test", date=date
    )


def test_expired_batch_is_refused(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, [ALICE])
    spec = BatchSpec(key, sender.base, expires=datetime.now(UTC) - timedelta(hours=1))
    write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=1))
    result = scan_spool(store, tmp_path / "spool")
    assert result.scan is not None and result.scan.hashed == 0
    assert any("expired" in s for s in result.scan.skipped)
    assert sender.pings == []


def test_5xx_is_retried_with_backoff_and_nothing_is_sent_twice(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, [ALICE])
    spec = BatchSpec(key, sender.base)
    write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=1))
    sender.fail_pings = 2
    waits: list[float] = []
    config = PingConfig(
        retries=3, backoff=0.5, use_smtp=False, sleep=waits.append, allow_private_http=True
    )
    result = scan_spool(store, tmp_path / "spool", config)
    assert waits == [0.5, 1.0]
    assert result.pings.delivered == 1
    assert sender.pings == [[spec.proof(ALICE)]]


def test_listener_down_keeps_the_proof_owed_until_a_later_run(
    store: ResponderStore, key: OperatorKey, tmp_path: Path
) -> None:
    add_addresses(store, [ALICE])
    port = free_port()  # nothing listens there yet
    spec = BatchSpec(key, f"http://127.0.0.1:{port}")
    write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=1))
    down = scan_spool(store, tmp_path / "spool")
    assert down.pings.delivered == 0 and down.pings.pending == 1
    assert any("unreachable" in f for f in down.pings.failures)

    up = SenderEndpoint(key.public_raw).start(port)
    try:
        later = scan_spool(store, tmp_path / "spool")
        assert later.pings.delivered == 1 and later.pings.pending == 0
        assert up.pings == [[spec.proof(ALICE)]]
        assert scan_spool(store, tmp_path / "spool").pings.requests == 0
        assert up.pings == [[spec.proof(ALICE)]]
    finally:
        up.stop()


def test_a_redirect_is_not_followed_and_the_proof_goes_nowhere_else(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    victim = SenderEndpoint(key.public_raw).start()
    try:
        sender.redirect_to = f"{victim.base}/dni/v1/ping/x"
        add_addresses(store, [ALICE])
        spec = BatchSpec(key, sender.base)
        write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=1))
        result = scan_spool(store, tmp_path / "spool")
        assert victim.pings == [] and sender.pings == []
        assert result.pings.refused == 1 and result.pings.pending == 0
        assert any("HTTP 307" in f for f in result.pings.failures)
    finally:
        victim.stop()


def test_smtp_fallback_when_http_keeps_failing(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, [ALICE])
    spec = BatchSpec(key, sender.base)
    write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=1))
    sender.fail_pings = 100
    sink = SmtpSink().start()
    # The domain proves it is the key holder's (tests/test_responder_dns.py).
    names = Dnsmasq(tmp_path, txt={"_dni.dni.example.test": [dni_record(key.fingerprint)]})
    try:
        config = PingConfig(
            smtp_server=("127.0.0.1", sink.port),
            dns=DnsConfig("127.0.0.1", names.port),
            retries=1,
            backoff=0.01,
            use_smtp=True,
            allow_private_http=True,
        )
        result = scan_spool(store, tmp_path / "spool", config)
    finally:
        sink.stop()
        names.stop()
    assert result.pings.delivered == 1
    ((_, rcpts, content),) = sink.messages
    assert rcpts == [f"dni-{spec.token}@dni.example.test"]
    assert f"DNI-Proof: {spec.proof(ALICE)}".encode() in content
    assert sender.pings == []


def test_same_key_relisting_escalates_2_4_8_and_is_reported(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    assert [pings_due(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    add_addresses(store, [ALICE])
    spool = tmp_path / "spool"
    counts = []
    for _ in range(4):
        spec = BatchSpec(key, sender.base)
        before = len(sender.pings)
        write_spool(spool, batch_articles(spec, [ALICE], parts=1), later=True)
        scan_spool(store, spool)
        counts.append(len(sender.pings) - before)
    assert counts == [1, 2, 4, 8]
    other = OperatorKey.generate()
    other_sender = SenderEndpoint(other.public_raw).start()
    try:
        write_spool(
            spool, batch_articles(BatchSpec(other, other_sender.base), [ALICE], parts=1), later=True
        )
        scan_spool(store, spool)
        assert len(other_sender.pings) == 1  # another key starts at one ping
    finally:
        other_sender.stop()
    rows = {r.fingerprint: r for r in key_reports(store)}
    assert rows[key.fingerprint].escalations == 3
    assert rows[key.fingerprint].pings_sent == 15
    assert rows[key.fingerprint].relisted == [scheme.mask(ALICE)]
    assert rows[other.fingerprint].escalations == 0
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Match)) == 5


def test_cli_add_ls_remove_scan_report(
    key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    db = tmp_path / "r.db"
    env = {"SCRUBBER_RESPONDER_DB": str(db)}
    (tmp_path / "mine.txt").write_text("# mine\nAlice+x@Example.org\n\nbob@example.net\n")
    added = run_cli("responder", "add", "--file", str(tmp_path / "mine.txt"), env=env)
    assert added.returncode == 0, added.stderr
    assert "protected 2 new" in added.stdout
    listed = run_cli("responder", "ls", env=env)
    assert listed.stdout.split() == ["alice@example.org", "bob@example.net"]
    assert run_cli("responder", "remove", "BOB@example.net", env=env).returncode == 0
    assert run_cli("responder", "ls", env=env).stdout.split() == ["alice@example.org"]
    missing = run_cli("responder", "remove", "zed@example.net", env=env)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")

    spec = BatchSpec(key, sender.base)
    write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=3))
    scan = run_cli(
        "responder",
        "scan",
        "--spool",
        str(tmp_path / "spool"),
        "--ping-delay",
        "0",
        "--allow-private",
        env=env,
    )
    assert scan.returncode == 0, scan.stderr
    assert "1 matches" in scan.stdout and "pinged 1 proofs" in scan.stdout
    assert sender.pings == [[spec.proof(ALICE)]]
    report = run_cli("responder", "--db", str(db), "report", "--json")
    assert report.returncode == 0, report.stderr
    assert '"pings_sent": 1' in report.stdout
    assert key.fingerprint in report.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan"], "give exactly one of --server URL or --spool DIR"),
        (["scan", "--spool", "/nonexistent/spool"], "spool directory /nonexistent/spool"),
        (["scan", "--server", "nntp://127.0.0.1:9"], "news server 127.0.0.1:9 unreachable"),
        (["scan", "--server", "http://x"], "news server must be nntp://"),
        (["scan", "--spool", ".", "--once", "--watch", "5"], "give --once or --watch SECONDS"),
        (["scan", "--spool", ".", "--smtp-server", "nohost"], "--smtp-server must be HOST:PORT"),
        (["add", "no-at-sign"], "no valid address given"),
        (["add", "--file", "/nonexistent/f"], "cannot read /nonexistent/f"),
    ],
)
def test_cli_bad_input_gives_one_line_and_nonzero_exit(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_cli("responder", "--db", str(tmp_path / "r.db"), *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_database_is_the_responders_own_schema(tmp_path: Path) -> None:
    opened = ResponderStore.open(tmp_path / "r.db")
    assert opened.schema_is_current()
    opened.close()
    with closing(sqlite3.connect(tmp_path / "r.db")) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert "responder_alembic_version" in tables and "alembic_version" not in tables
    assert {"protected", "digests", "matches", "ping_log", "cursors", "batches"} <= tables


def test_migration_r0004_drops_refused_batches_with_out_of_rule_parameters(tmp_path: Path) -> None:
    """Before r0004 a batch with m < 8p was kept as refused; SeenBatch.params
    could not load it now (scheme.Params refuses it), so the row goes."""
    from scrubber.responder.store import SCHEMA as RESPONDER

    path = tmp_path / "r.db"
    with Store(f"sqlite:///{path}", schema=RESPONDER) as old:
        old.migrate("r0003")
        with old.engine.begin() as conn:
            for batch_id, m in (("bad", 4), ("good", 1024)):
                conn.exec_driver_sql(
                    "INSERT INTO batches (batch_id, key, status, reason, parts, salt, t, m, p, "
                    "tag_length, respond_http, respond_smtp, expires_at, seen_at) VALUES "
                    "(?, x'00', 'refused', 'r', 1, x'00', 1, ?, 1, 8, 'h', 's@d', "
                    "'2030-01-01', '2026-01-01')",
                    (batch_id, m),
                )
    opened = ResponderStore.open(path)
    try:
        with opened.read() as session:
            rows = session.scalars(select(SeenBatch)).all()
            assert [(b.batch_id, b.params.m, b.respond.domain) for b in rows] == [
                ("good", 1024, "d")
            ]
    finally:
        opened.close()


def test_responder_models_match_its_migrations(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from scrubber.responder.models import ResponderBase
    from scrubber.responder.store import VERSION_TABLE

    opened = ResponderStore.open(tmp_path / "r.db")
    try:
        with opened.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            diff = compare_metadata(context, ResponderBase.metadata)
    finally:
        opened.close()
    assert diff == [], f"responder models and migrations disagree: {diff}"
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from scrubber.responder.store import SCHEMA_HEAD

    config = Config()
    config.set_main_option("script_location", str(files("scrubber.responder") / "migrations"))
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_HEAD]


def test_a_second_scan_of_the_same_database_is_refused_while_one_runs(tmp_path: Path) -> None:
    opened = ResponderStore.open(tmp_path / "r.db")
    spool = tmp_path / "spool"
    spool.mkdir()
    try:
        with opened.exclusive():
            busy = run_cli(
                "responder", "--db", str(tmp_path / "r.db"), "scan", "--spool", str(spool)
            )
        assert busy.returncode == 1
        assert busy.stderr.strip() == f"error: another responder scan is using {tmp_path / 'r.db'}"
        free = run_cli("responder", "--db", str(tmp_path / "r.db"), "scan", "--spool", str(spool))
        assert free.returncode == 0, free.stderr
    finally:
        opened.close()


def test_a_run_shows_its_result_then_fails_when_its_source_failed(
    store: ResponderStore, tmp_path: Path
) -> None:
    shown: list[RunResult] = []
    with pytest.raises(ResponderError, match="spool directory"):
        run(store, lambda: SpoolSource(tmp_path / "missing"), shown.append, ping_config=NO_WAIT)
    assert [r.scan for r in shown] == [None] and "spool directory" in str(shown[0].error)


def test_watch_reports_a_run_that_could_not_start_and_runs_again(
    store: ResponderStore, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    other = ResponderStore.open(tmp_path / "responder.db")  # another scan holds the lock
    held = other.exclusive()
    held.__enter__()
    shown: list[RunResult] = []
    failed: list[ResponderError] = []
    slept: list[float] = []

    class Stop(Exception):
        pass

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:
            held.__exit__(None, None, None)  # the other scan ends
        if len(slept) == 3:
            raise Stop

    with pytest.raises(Stop):
        watch(
            store,
            lambda: SpoolSource(spool),
            7.5,
            shown.append,
            failed.append,
            ping_config=NO_WAIT,
            sleep=sleep,
        )
    other.close()
    assert ["another responder scan" in e.message for e in failed] == [True]
    assert [r.error for r in shown] == [None, None] and slept == [7.5, 7.5, 7.5]
