"""The store: migrations on SQLite and a real PostgreSQL, models match them."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import bindparam, inspect, select, text
from sqlalchemy.engine import Connection

from scrubber.errors import StoreError
from scrubber.store import Store
from scrubber.store.models import Base, BatchPartPost, MailingList
from scrubber.store.types import UTCDateTime, utcnow


def _assert_migrated(store: Store) -> None:
    store.migrate()
    assert store.schema_is_current()
    with store.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == [], f"models and migrations disagree: {diff}"
    tables = set(inspect(store.engine).get_table_names())
    assert {"addresses", "lists", "batches", "pings", "suppressions"} <= tables


def test_migrations_sqlite(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        _assert_migrated(store)
        with store.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        assert mode == "wal"


@pytest.mark.postgres
def test_migrations_postgres(pg_url: str) -> None:
    with Store(pg_url) as store:
        _assert_migrated(store)
        _assert_migrated(store)  # running them again is a no-op


@pytest.mark.postgres
def test_the_test_role_may_end_an_autovacuum_worker(pg_url: str) -> None:
    """pg_url drops its database WITH (FORCE); an autovacuum worker running there
    has no role, and only pg_signal_backend lets a non-superuser end it (CI failed
    once on exactly that)."""
    from sqlalchemy import create_engine

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            member = conn.execute(
                text("select pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')")
            ).scalar_one()
    finally:
        engine.dispose()
    assert member is True


def test_write_rolls_back_on_error(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        store.migrate()
        with pytest.raises(RuntimeError), store.write() as session:
            session.add(MailingList(name="x", created_at=utcnow()))
            session.flush()
            raise RuntimeError("boom")
        with store.read() as session:
            assert session.query(MailingList).count() == 0


def test_schema_head_constant_matches_migrations() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from scrubber.store.store import SCHEMA_HEAD

    config = Config()
    config.set_main_option("script_location", "scrubber.store:migrations")
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_HEAD]


def test_a_store_reads_only_its_own_schemas_version_table(tmp_path: Path) -> None:
    from scrubber.responder.store import SCHEMA as RESPONDER

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with Store(url, schema=RESPONDER) as responder:
        responder.migrate()
        assert responder.schema_revision() == RESPONDER.head
        assert responder.schema_is_current()
    with Store(url) as operator:
        assert operator.schema_revision() is None
        assert not operator.schema_is_current()


def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store, pytest.raises(StoreError):
        store.require_current_schema()


def test_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        Store("nosuchdialect://x")


def test_datetimes_come_back_aware(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        store.migrate()
        with store.write() as session:
            session.add(MailingList(name="x", created_at=utcnow()))
        with store.read() as session:
            created = session.query(MailingList).one().created_at
        assert created.tzinfo is not None


def _list_entries_sql(store: Store) -> str:
    with store.engine.connect() as conn:
        return str(
            conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'list_entries'"
            ).scalar_one()
        )


def test_list_entries_migration_keeps_rows(tmp_path: Path) -> None:
    """0003 rebuilds list_entries WITHOUT ROWID on SQLite; no entry is lost."""
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        store.migrate("0002")
        assert "WITHOUT ROWID" not in _list_entries_sql(store)
        with store.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO lists (id, name, created_at) VALUES (1, 'a', 'x')")
            conn.exec_driver_sql("INSERT INTO addresses (id, canonical) VALUES (7, 'a@b.example')")
            conn.exec_driver_sql("INSERT INTO list_entries VALUES (1, 7, 'A@b.example')")
        store.migrate()
        assert store.schema_is_current()
        assert "WITHOUT ROWID" in _list_entries_sql(store)
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT * FROM list_entries").all()
            indexes = conn.exec_driver_sql("PRAGMA index_list(list_entries)").all()
        assert [tuple(r) for r in rows] == [(1, 7, "A@b.example")]
        assert [i[1] for i in indexes] == ["sqlite_autoindex_list_entries_1"]


def test_write_connection_can_relax_foreign_keys(tmp_path: Path) -> None:
    """Bulk writers may skip SQLite's per-row foreign-key checks; only they."""
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        store.migrate()
        orphan = "INSERT INTO list_entries VALUES (99, 99, 'x@y.example')"
        with store.write_connection(check_foreign_keys=False) as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
            conn.exec_driver_sql(orphan)
            conn.exec_driver_sql("DELETE FROM list_entries")
        # The pooled connection is checked again afterwards.
        with pytest.raises(StoreError), store.write_connection() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            conn.exec_driver_sql(orphan)


def test_driver_errors_in_a_write_are_store_errors(tmp_path: Path) -> None:
    """Statements run on the driver's own connection (the listener's group
    commit) fail as StoreError too, temporary ones as StoreUnavailable."""
    from scrubber.errors import StoreUnavailable

    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        store.migrate()
        with pytest.raises(StoreUnavailable), store.write_connection() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute("SELECT * FROM no_such_table")
        insert = "INSERT INTO lists (id, name, created_at) VALUES (1, 'a', '2026-01-01')"
        with pytest.raises(StoreError) as caught, store.write_connection() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute(insert)
            driver.execute(insert)
        assert not isinstance(caught.value, StoreUnavailable)
        assert caught.value.message.startswith("database error: UNIQUE constraint failed")
        with store.read() as session:  # rolled back: nothing of it stayed
            assert session.query(MailingList).count() == 0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on SQLite and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


def _batch_with_parts_at_0007(store: Store, posted: dict[int, tuple[datetime, str]]) -> None:
    """Batch b1 with three parts, marked posted as ``posted`` says (schema 0007)."""
    now = utcnow()
    with store.engine.begin() as conn:
        stamp = {"now": now}
        conn.execute(
            text(
                "INSERT INTO salt_epochs (id, salt, t, m, p, started_at, ends_at) "
                "VALUES (1, :salt, 2, 1024, 1, :now, :now)"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"salt": bytes(16), **stamp},
        )
        conn.execute(
            text(
                "INSERT INTO batches (id, created_at, epoch_id, salt, t, m, p, tag_length, "
                "token, newsgroup, respond_http, respond_smtp, expires_at, key_public, count, "
                "parts_total) VALUES ('b1', :now, 1, :salt, 2, 1024, 1, 8, 'tok', 'alt.dni.test', "
                "'http://x/', 'dni-tok@x', :now, 'key', 30, 3)"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"salt": bytes(16), **stamp},
        )
        insert_part = text(
            "INSERT INTO batch_parts (batch_id, part, message_id, first_tag, last_tag, count, "
            "size, posted_at, server) VALUES ('b1', :part, :mid, :tag, :tag, 10, 100, :at, "
            ":server)"
        ).bindparams(bindparam("at", type_=UTCDateTime()))
        for part in (1, 2, 3):
            at, server = posted.get(part, (None, None))
            conn.execute(
                insert_part,
                {
                    "part": part,
                    "mid": f"<b1.{part}@x>",
                    "tag": bytes(8),
                    "at": at,
                    "server": server,
                },
            )


def test_part_posts_migration_keeps_where_each_part_went(empty_url: str) -> None:
    """0008 moves each part's posted mark to batch_part_posts, on both databases."""
    one, two = utcnow() - timedelta(hours=2), utcnow() - timedelta(hours=1)
    with Store(empty_url) as store:
        store.migrate("0007")
        _batch_with_parts_at_0007(
            store, {1: (one, "nntp://news.example:119"), 2: (two, "spool:/srv/spool")}
        )
        _assert_migrated(store)
        with store.read() as session:
            rows = session.execute(
                select(BatchPartPost.part, BatchPartPost.server, BatchPartPost.posted_at).order_by(
                    BatchPartPost.part
                )
            ).all()
        columns = {c["name"] for c in inspect(store.engine).get_columns("batch_parts")}
    assert [tuple(r) for r in rows] == [
        (1, "nntp://news.example:119", one),
        (2, "spool:/srv/spool", two),
    ]
    assert not {"posted_at", "server"} & columns


def test_a_bulk_write_has_a_big_page_cache_and_gives_it_back(tmp_path: Path) -> None:
    """Bulk writers (import, batch create) get 64 MiB of page cache for their
    transaction; the pooled connection goes back with the default."""
    from scrubber.store.store import BULK_CACHE_KIB

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()

    def cache(conn: Connection) -> int:
        return int(conn.exec_driver_sql("PRAGMA main.cache_size").scalar_one())

    with store.read() as session:
        default = cache(session.connection())
    assert default != BULK_CACHE_KIB
    with store.write(bulk=True) as session:
        assert cache(session.connection()) == BULK_CACHE_KIB
    with store.write_connection(bulk=True) as conn:
        assert cache(conn) == BULK_CACHE_KIB
    with store.write() as session:
        assert cache(session.connection()) == default
    with store.read() as session:
        assert cache(session.connection()) == default
    store.close()


def _batches_at_0008(store: Store, *, bad_proof: bool = False) -> dict[str, bytes]:
    """Schema 0008: a v1 batch b1 and a v2 batch b2 in one salt epoch, their
    proof index as 0008 kept it (proof = H[16:32]), an accepted ping of b1;
    returns the proof of each address (``bad_proof``: b2's first entry's
    proof differs from its digest's, as no release wrote)."""
    now = utcnow()
    digests = {f"a{i}@example.test": bytes([i]) * 32 for i in range(1, 5)}
    at = bindparam("now", type_=UTCDateTime())
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO salt_epochs (id, salt, t, m, p, started_at, ends_at) "
                "VALUES (1, :salt, 2, 1024, 1, :now, :now)"
            ).bindparams(at),
            {"salt": bytes(16), "now": now},
        )
        for i, (canonical, h) in enumerate(digests.items(), start=1):
            conn.execute(
                text("INSERT INTO addresses (id, canonical) VALUES (:id, :c)"),
                {"id": i, "c": canonical},
            )
            conn.execute(
                text("INSERT INTO digests (epoch_id, address_id, h) VALUES (1, :id, :h)"),
                {"id": i, "h": h},
            )
        for batch_id, protocol, nonce in (("b1", 1, None), ("b2", 2, bytes(16))):
            conn.execute(
                text(
                    "INSERT INTO batches (id, created_at, epoch_id, salt, t, m, p, tag_length, "
                    "token, newsgroup, respond_http, respond_smtp, expires_at, key_public, count, "
                    "parts_total, protocol, nonce, gcs_p, gcs_m, encoding) VALUES (:id, :now, 1, "
                    ":salt, 2, 1024, 1, 8, :token, 'alt.dni.test', 'http://x/', 'dni-tok@x', :now, "
                    ":key, 3, 0, :protocol, :nonce, :gcs_p, :gcs_m, :encoding)"
                ).bindparams(at),
                {
                    "id": batch_id,
                    "now": now,
                    "salt": bytes(16),
                    "token": f"tok-{batch_id}",
                    "key": base64.b64encode(bytes(32)).decode(),
                    "protocol": protocol,
                    "nonce": nonce,
                    "gcs_p": 19 if nonce else None,
                    "gcs_m": 784931 if nonce else None,
                    "encoding": "yenc" if nonce else None,
                },
            )
        members = {"b1": [1, 2, 3], "b2": [2, 3, 4]}
        for batch_id, ids in members.items():
            for address_id in ids:
                h = digests[f"a{address_id}@example.test"]
                proof = bytes(16) if bad_proof and batch_id == "b2" and address_id == 2 else h[16:]
                conn.execute(
                    text(
                        "INSERT INTO batch_entries (batch_id, proof, tag, address_id) "
                        "VALUES (:b, :proof, :tag, :a)"
                    ),
                    {"b": batch_id, "proof": proof, "tag": h[:8], "a": address_id},
                )
        conn.execute(
            text(
                "INSERT INTO pings (token, batch_id, proof, outcome, channel, peer, address_id, "
                "received_at, committed_at) VALUES ('tok-b1', 'b1', :proof, 'accepted', 'http', "
                "'192.0.2.0/24', 1, :now, :now)"
            ).bindparams(at),
            {"proof": digests["a1@example.test"][16:], "now": now},
        )
    return {canonical: h[16:] for canonical, h in digests.items()}


def test_proofs_migration_keeps_batches_and_pings(empty_url: str) -> None:
    """0009 drops the proof column of batch_entries: v1 and v2 batches made
    at 0008 keep their members and tags, their pings are still checked
    (accepted, duplicate, invalid) and their reports still build."""
    from scrubber import scheme
    from scrubber.listener.ingestor import Ingestor
    from scrubber.listener.ping import Outcome
    from scrubber.report.build import build_report
    from scrubber.store.models import BatchEntry

    with Store(empty_url) as store:
        store.migrate("0008")
        proofs = {k: scheme.b64url(v) for k, v in _batches_at_0008(store).items()}
        _assert_migrated(store)
        with store.read() as session:
            entries = session.execute(
                select(BatchEntry.batch_id, BatchEntry.address_id, BatchEntry.tag).order_by(
                    BatchEntry.batch_id, BatchEntry.address_id
                )
            ).all()
        assert [tuple(e) for e in entries] == [
            ("b1", 1, bytes([1]) * 8),
            ("b1", 2, bytes([2]) * 8),
            ("b1", 3, bytes([3]) * 8),
            ("b2", 2, bytes([2]) * 8),
            ("b2", 3, bytes([3]) * 8),
            ("b2", 4, bytes([4]) * 8),
        ]
        ingestor = Ingestor(store)
        one = ingestor.record("tok-b1", [proofs[f"a{i}@example.test"] for i in (1, 2, 4)])
        assert one.outcomes == [Outcome.DUPLICATE, Outcome.ACCEPTED, Outcome.INVALID]
        two = ingestor.record("tok-b2", [proofs[f"a{i}@example.test"] for i in (1, 4, 4)])
        assert two.outcomes == [Outcome.INVALID, Outcome.ACCEPTED, Outcome.DUPLICATE]
        for batch_id in ("b1", "b2"):
            report = build_report(store, batch_id)
            assert report["addresses_hashed"] == 3
        if store.engine.dialect.name == "sqlite":
            with store.engine.connect() as conn:
                table = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'batch_entries'"
                ).scalar_one()
            assert "WITHOUT ROWID" in table


def test_proofs_migration_refuses_a_proof_its_digest_does_not_give(empty_url: str) -> None:
    """0009 checks every entry's proof against its digest before dropping
    the column, and changes nothing if one differs."""
    with Store(empty_url) as store:
        store.migrate("0008")
        _batches_at_0008(store, bad_proof=True)
        with pytest.raises(StoreError, match=r"migration 0009: .* b2 \(1\)"):
            store.migrate()
        assert store.schema_revision() == "0008"
        with store.engine.connect() as conn:
            kept = conn.exec_driver_sql("SELECT COUNT(proof) FROM batch_entries").scalar_one()
        assert kept == 6


def test_proofs_migration_downgrades_to_the_same_entries(empty_url: str) -> None:
    """0009's downgrade puts every entry's proof back from its digest: the
    0008 table it rebuilds holds the rows 0008 had, and 0009 applies again."""
    from alembic import command

    from scrubber.store.store import _alembic_config

    def entries(store: Store) -> list[tuple[object, ...]]:
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT batch_id, proof, tag, address_id FROM batch_entries "
                "ORDER BY batch_id, address_id"
            ).all()
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]

    with Store(empty_url) as store:
        store.migrate("0008")
        _batches_at_0008(store)
        before = entries(store)
        store.migrate()
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(store.schema, conn), "0008")
        assert store.schema_revision() == "0008"
        assert entries(store) == before
        _assert_migrated(store)


def test_a_driver_transaction_commits_or_rolls_back(store: Store) -> None:
    """The listener's group transaction, straight on the driver's connection:
    committed when the block returns, rolled back (nothing stays) when it
    raises, driver errors as StoreError, and the pooled connection is left
    outside any transaction for the next user."""
    from scrubber.errors import StoreUnavailable

    mark = "?" if store.is_sqlite else "%s"
    insert = f"INSERT INTO lists (id, name, created_at) VALUES ({mark}, {mark}, {mark})"
    when = "2026-01-01 00:00:00" if store.is_sqlite else utcnow()
    with store.driver_transaction() as driver:
        driver.cursor().execute(insert, (1, "kept", when))
    with pytest.raises(RuntimeError), store.driver_transaction() as driver:
        driver.cursor().execute(insert, (2, "dropped", when))
        raise RuntimeError("the group failed after its statements")
    with pytest.raises(StoreError) as caught, store.driver_transaction() as driver:
        driver.cursor().execute(insert, (3, "dropped too", when))
        driver.cursor().execute(insert, (1, "a duplicate key", when))
    assert not isinstance(caught.value, StoreUnavailable)
    with store.read() as session:
        assert session.scalars(select(MailingList.name)).all() == ["kept"]
    with store.driver_transaction() as driver:  # a clean connection again
        cursor = driver.cursor()
        cursor.execute("SELECT count(*) FROM lists")
        assert cursor.fetchone()[0] == 1


def test_a_driver_transaction_holds_the_sqlite_write_lock(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE, as every SQLite writer: a second writer waits for the
    lock (and fails as StoreUnavailable after lock_wait_ms), so the group's
    checks stay exact from its first statement to its commit; and the
    connection keeps synchronous=FULL, which makes the commit durable."""
    from scrubber.errors import StoreUnavailable

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with Store(url) as store, Store(url, lock_wait_ms=50) as other:
        store.migrate()
        with store.driver_transaction() as driver:
            assert driver.in_transaction
            assert driver.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            with pytest.raises(StoreUnavailable), other.driver_transaction():
                pass
            with pytest.raises(StoreUnavailable), other.write_connection():
                pass
        with other.driver_transaction() as driver:  # free once committed
            assert driver.in_transaction
