"""The Store: the one owner of the database engine.

SQLite runs in WAL mode with ``synchronous=FULL`` so a committed transaction
survives a crash; writers take the lock up front (``BEGIN IMMEDIATE``) so two
writers queue instead of deadlocking on a lock upgrade. PostgreSQL is used by
URL for several listeners and large lists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, exc, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from scrubber.errors import StoreError, StoreUnavailable
from scrubber.private import tighten, touch_private

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration. Opening a workspace compares the database with this
# constant instead of loading Alembic (which costs most of a command's start
# time); tests/test_store.py fails when it disagrees with the migrations.
SCHEMA_HEAD = "0009"


@dataclass(frozen=True)
class Schema:
    """What a Store migrates: the package whose ``migrations`` directory holds
    the Alembic scripts, the table recording the revision, and the newest
    revision (compared with the database instead of loading Alembic)."""

    package: str
    version_table: str
    head: str


# The operator's workspace database; the responder's is responder.store.SCHEMA.
MAIN_SCHEMA = Schema("scrubber.store", "alembic_version", SCHEMA_HEAD)

_WRITE = "scrubber_write"
LOCK_WAIT_MS = 30_000  # a command waits this long for another writer's lock
BULK_CACHE_KIB = -65536  # negative: KiB, so 64 MiB per cache (main and temp)


class Store:
    """Engine, sessions and the single write path of one database."""

    def __init__(
        self,
        url: str,
        *,
        schema: Schema = MAIN_SCHEMA,
        echo: bool = False,
        lock_wait_ms: int = LOCK_WAIT_MS,
    ) -> None:
        """``schema``: the migrations this database follows; ``lock_wait_ms``:
        how long a statement waits for a locked SQLite database before it
        fails as StoreUnavailable (PostgreSQL: unused)."""
        self.url = url
        self.schema = schema
        _private_sqlite_file(url)
        try:
            self.engine: Engine = create_engine(url, echo=echo, **_engine_options(url))
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
            raise StoreError(f"cannot use database URL {_redact(url)}: {error}") from None
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine, lock_wait_ms)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transactions -----------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; rolled back at the end."""
        with _translate_errors(), self._sessions() as session:
            yield session

    @contextlib.contextmanager
    def write(self, *, bulk: bool = False) -> Iterator[Session]:
        """The write path: one transaction, committed on success, else rolled back.

        ``bulk=True`` gives the transaction a bigger page cache (see
        :func:`_bulk_cache`), for writes of hundreds of thousands of rows.
        """
        with _translate_errors():
            conn = self.engine.connect().execution_options(**{_WRITE: True})
            try:
                with (
                    Session(bind=conn, expire_on_commit=False) as session,
                    session.begin(),
                    _bulk_cache(session.connection(), on=bulk),
                ):
                    yield session
            finally:
                conn.close()

    @contextlib.contextmanager
    def write_connection(
        self, *, check_foreign_keys: bool = True, dry_run: bool = False, bulk: bool = False
    ) -> Iterator[Connection]:
        """Core-level write transaction, for bulk statements.

        ``check_foreign_keys=False`` skips SQLite's per-row foreign-key checks
        for this transaction: for bulk writers whose statements take every
        key from the rows they join (PostgreSQL always checks).
        ``dry_run=True`` runs every statement and rolls back at the end: the
        counts are those of the real run, and nothing is kept.
        ``bulk=True``: a bigger page cache, as for :meth:`write`.
        """
        with _translate_errors(self.engine.dialect.loaded_dbapi):
            conn = self.engine.connect().execution_options(**{_WRITE: True})
            relax = self.is_sqlite and not check_foreign_keys
            try:
                if relax:
                    _sqlite_foreign_keys(conn, on=False)
                with conn.begin() as transaction:
                    with _bulk_cache(conn, on=bulk):
                        yield conn
                    # After the cache is restored: no statement runs once rolled back.
                    if dry_run:
                        transaction.rollback()
            finally:
                if relax and not conn.invalidated:
                    _sqlite_foreign_keys(conn, on=True)
                conn.close()

    @contextlib.contextmanager
    def driver_transaction(self) -> Iterator[Any]:
        """A write transaction straight on the driver's (PEP 249) connection:
        committed on success, else rolled back, and committed only when the
        block returns, with the durability of :meth:`write_connection` (on
        SQLite ``BEGIN IMMEDIATE`` and the connection's ``synchronous=FULL``;
        on PostgreSQL the server's own commit).

        For the listener's group commit, whose statements are plain SQL on the
        driver's cursor anyway (listener/sql.py): SQLAlchemy's Connection and
        transaction objects cost 35 us of CPU an empty transaction against 10
        us for this (quiet machine; 112 against 9 under load: docs/performance.md,
        listen_http). Errors arrive as StoreError / StoreUnavailable, as from
        the other paths.
        """
        dbapi = self.engine.dialect.loaded_dbapi
        with _translate_errors(dbapi):
            pooled = self.engine.raw_connection()  # the pool's checks and hooks still run
            try:
                driver = pooled.driver_connection
                assert driver is not None
                if self.is_sqlite:  # autocommit mode (the connect hook): begin by hand
                    driver.execute("BEGIN IMMEDIATE")
                try:
                    yield driver
                    driver.commit()
                except BaseException:
                    _rollback(pooled, dbapi)
                    raise
            finally:
                pooled.close()

    # -- schema -----------------------------------------------------------

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to the newest migration (or to ``revision``)."""
        from alembic import command

        with _translate_errors(), self.engine.begin() as conn:
            command.upgrade(_alembic_config(self.schema, conn), revision)

    def schema_revision(self) -> str | None:
        """The migration the database is at (None for an empty database)."""
        table = self.schema.version_table
        with _translate_errors(), self.engine.connect() as conn:
            if not inspect(conn).has_table(table):
                return None
            query = text(f"SELECT version_num FROM {table}")  # noqa: S608 - a constant
            return conn.execute(query).scalar()

    def schema_is_current(self) -> bool:
        return self.schema_revision() == self.schema.head

    def require_current_schema(self) -> None:
        if not self.schema_is_current():
            raise StoreError(
                f"database {_redact(self.url)} is not at the current schema; "
                "run 'scrubber init --upgrade'"
            )


def _rollback(pooled: Any, dbapi: Any) -> None:
    """Roll back a driver transaction that failed; a connection that cannot
    (it broke, or was interrupted mid-statement) is dropped from the pool."""
    try:
        pooled.driver_connection.rollback()
    except dbapi.Error:
        pooled.invalidate()


def _alembic_config(schema: Schema, conn: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files(schema.package) / "migrations"))
    config.attributes["connection"] = conn
    config.attributes["version_table"] = schema.version_table  # read by env.py
    return config


def run_migrations(metadata: MetaData) -> None:
    """The body of every schema's Alembic ``env.py``: migrate the connection
    and version table ``_alembic_config`` put in the config."""
    from alembic import context

    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        version_table=context.config.attributes["version_table"],
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _private_sqlite_file(url: str) -> None:
    """Create a SQLite file 0600 before SQLite does (it would use the umask).

    SQLite gives the -wal and -shm files the database file's mode, so this
    keeps all three owner-only; files an older version left wider are tightened.
    """
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        return  # create_engine reports the bad URL
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        return  # a URI filename: the caller owns its options
    path = Path(database)
    try:
        touch_private(path)
    except OSError as error:
        raise StoreError(f"cannot open database {path}: {error.strerror}") from None
    for suffix in ("-wal", "-shm"):
        tighten(path.with_name(path.name + suffix))


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}


def _sqlite_foreign_keys(conn: Connection, *, on: bool) -> None:
    # Straight on the driver connection: through SQLAlchemy the statement
    # would open the transaction first, and SQLite ignores this pragma
    # inside one. The DBAPI connection, which a detached Connection (one
    # closed at the end rather than pooled: lists.import_files) still has.
    driver = conn.connection.dbapi_connection
    assert driver is not None
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _install_sqlite_hooks(engine: Engine, lock_wait_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, emit BEGIN.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_wait_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def _bulk_cache(conn: Connection, *, on: bool) -> Iterator[None]:
    """SQLite: a 64 MiB page cache (main and temp) for one bulk transaction,
    restored after, since the connection goes back to the pool. The default
    2 MB is far smaller than the B-trees a 1M-row insert or import touches
    in random key order: a 1M-address batch's proof index inserted in 30 s
    with it, 15 s with 64 MiB (docs/performance.md, pipeline)."""
    if not on or conn.dialect.name != "sqlite":
        yield
        return
    names = ("main.cache_size", "temp.cache_size")
    saved = [(name, int(conn.exec_driver_sql(f"PRAGMA {name}").scalar_one())) for name in names]
    for name in names:
        conn.exec_driver_sql(f"PRAGMA {name}={BULK_CACHE_KIB}")
    try:
        yield
    finally:
        # An interrupt inside a statement invalidates the connection; it is
        # then discarded, so there is nothing to restore.
        if not conn.invalidated:
            for name, value in saved:
                conn.exec_driver_sql(f"PRAGMA {name}={value}")


@contextlib.contextmanager
def _translate_errors(dbapi: Any = None) -> Iterator[None]:
    """Database failures as StoreError; ``dbapi`` (the driver module) also
    covers statements run on the driver's connection directly."""
    try:
        yield
    except exc.OperationalError as error:
        text = str(error.orig) if error.orig is not None else str(error)
        raise StoreUnavailable(f"database unavailable: {text.splitlines()[0]}") from error
    except exc.DBAPIError as error:
        text = str(error.orig) if error.orig is not None else str(error)
        raise StoreError(f"database error: {text.splitlines()[0]}") from error
    except Exception as error:
        if dbapi is None or not isinstance(error, dbapi.Error):
            raise
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, dbapi.OperationalError):
            raise StoreUnavailable(f"database unavailable: {first}") from error
        raise StoreError(f"database error: {first}") from error


def _redact(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<invalid URL>"
