"""Mailing lists: import, export, suppression.

Import streams each file through the scheme's canonical form into a staging
table, then folds it into the list with set-based SQL, all in one
transaction: an interrupted import leaves the list as it was.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import multiprocessing
import os
import signal
import stat
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection as MPConnection
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, func, insert, select, text, update

from scrubber import hashing, ledger, scheme
from scrubber.errors import ImportWorkerError, InputFileError, NotFoundError, UsageError
from scrubber.private import FILE_MODE, AtomicFile, private_dir
from scrubber.readers import (
    CellBlock,
    LineBlock,
    detect_file_encoding,
    read_address_blocks,
    text_cell,
)
from scrubber.store import Store
from scrubber.store.models import (
    Address,
    BatchList,
    ImportRun,
    ListEntry,
    ListExport,
    MailingList,
    Suppression,
)
from scrubber.store.queries import get_list
from scrubber.store.types import utcnow

STAGING_CHUNK = 20_000
WORKER_MIN_BYTES = 4 << 20  # smaller inputs are not worth forking a worker
MAX_NAME = 200


@dataclass(frozen=True)
class ImportSummary:
    list_name: str
    lines: int
    accepted: int
    unique: int
    added: int
    rejected: int
    rejects_path: Path | None
    encodings: dict[str, str] = field(default_factory=dict)  # source -> encoding read with
    removed: int = 0  # --replace: entries the files no longer hold, taken off the list
    dry_run: bool = False  # counted only: nothing was written

    @property
    def folded(self) -> int:
        """Lines that repeated an address already seen in this import."""
        return self.accepted - self.unique

    @property
    def already_listed(self) -> int:
        return self.unique - self.added


@dataclass(frozen=True)
class ListInfo:
    name: str
    addresses: int
    suppressed: int
    created_at: datetime
    last_import_at: datetime | None


@dataclass(frozen=True)
class SuppressSummary:
    added: int
    already: int
    rejected: list[tuple[str, str]]
    dry_run: bool = False


@dataclass(frozen=True)
class RemoveSummary:
    """What ``list rm`` took away (or, on a dry run, would take away)."""

    name: str
    entries: int
    imports: int  # import history rows
    batches: int  # batches made from the list: they keep their proofs, not the list's name
    dry_run: bool = False


def validate_name(name: str) -> str:
    if not name or len(name) > MAX_NAME or not name.isprintable() or name.strip() != name:
        raise UsageError(f"invalid list name {name!r}: use 1-{MAX_NAME} printable characters")
    return name


class RejectsCounter:
    """Rejected lines counted only (a dry run writes no file)."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.count = 0

    def add(self, source: str, line: int, value: str, reason: str) -> None:
        self.count += 1

    def finish(self) -> None:
        pass

    def commit(self) -> Path | None:
        return None

    def discard(self) -> None:
        pass


class RejectsWriter(RejectsCounter):
    """Rejected lines go to a CSV written aside and moved into place at the end."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        try:
            private_dir(path.parent, tighten_existing=False)
            self._file = AtomicFile.text(path)  # 0600, as rejected lines are addresses
        except OSError as exc:
            raise self._unwritable(exc) from None
        self._csv = csv.writer(self._file.handle)
        self._csv.writerow(["file", "line", "input", "reason"])

    def add(self, source: str, line: int, value: str, reason: str) -> None:
        self.count += 1
        try:
            self._csv.writerow([source, line, value, reason])
        except OSError as exc:  # e.g. the disk is full
            raise self._unwritable(exc) from None

    def finish(self) -> None:
        """Write out what is buffered: before the import commits, so a rejects
        file that cannot be written (disk full) fails the import, not after it."""
        try:
            self._file.finish()
        except OSError as exc:
            raise self._unwritable(exc) from None

    def commit(self) -> Path | None:
        self.finish()  # a no-op when already finished
        if self.count == 0:
            self._file.discard()
            return None
        return self._file.commit()

    def discard(self) -> None:
        self._file.discard()

    def _unwritable(self, exc: OSError) -> UsageError:
        return UsageError(
            f"cannot write the rejects file {self.path}: {exc.strerror}; pass --rejects PATH"
        )


def import_files(
    store: Store,
    name: str,
    paths: list[Path],
    *,
    rejects_path: Path,
    column: str | None = None,
    encoding: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
    replace: bool = False,
    new: bool = False,
    dry_run: bool = False,
) -> ImportSummary:
    """Import ``paths`` into list ``name`` in one transaction.

    The list is created if new, unless its name looks like a mistake (a file
    name, another list's name in other case): then only with ``new``, which
    also refuses an existing list. ``replace`` takes off the list every
    entry the files do not hold (suppressions are the operator's: kept).
    ``dry_run`` counts everything and writes nothing, not even rejects.
    """
    validate_name(name)
    started = utcnow()
    source = Sources.of(paths, column, encoding)
    rejects = RejectsCounter() if dry_run else RejectsWriter(rejects_path)
    try:
        # Every key the fold writes comes from a join in the same transaction,
        # so SQLite's per-row foreign-key checks would only cost time.
        writing = store.write_connection(check_foreign_keys=False, dry_run=dry_run, bulk=True)
        with writing as conn:
            list_id = _ensure_list(conn, name, started, new=new)
            lines, accepted = _stage(conn, source, rejects, on_bytes)
            unique, added = _fold_staging(conn, list_id)
            removed = _replace_entries(conn, list_id, accepted) if replace else 0
            # The staging table goes with the connection, closed at the end
            # instead of pooled: dropping it (freeing every page of a
            # temporary B-tree) cost 0.15-0.25 s of a 1M-line import.
            conn.detach()
            rejects.finish()
            kept = rejects.path if rejects.count else None
            conn.execute(
                insert(ImportRun).values(
                    list_id=list_id,
                    source=", ".join(str(p) for p in paths),
                    started_at=started,
                    finished_at=utcnow(),
                    lines=lines,
                    accepted=accepted,
                    added=added,
                    rejected=rejects.count,
                    rejects_path=str(kept) if kept else None,
                )
            )
            conn.execute(
                update(MailingList).where(MailingList.id == list_id).values(last_import_at=utcnow())
            )
    except BaseException:
        rejects.discard()
        raise
    # Moved into place only once the import is committed.
    rejects.commit()
    return ImportSummary(
        name,
        lines,
        accepted,
        unique,
        added,
        rejects.count,
        kept,
        dict(source.encodings),
        removed,
        dry_run,
    )


# Endings of the files people import: a list so named is likely a forgotten list name.
FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".gz", ".zip", ".json", ".xls", ".xlsx")


def _ensure_list(conn: Connection, name: str, now: datetime, *, new: bool) -> int:
    ids: dict[str, int] = {n: i for n, i in conn.execute(select(MailingList.name, MailingList.id))}
    if name in ids:
        if new:
            raise UsageError(f"list {name!r} exists already; leave out --new to import into it")
        return ids[name]
    if not new:
        _refuse_unlikely_name(name, ids)
    result = conn.execute(insert(MailingList).values(name=name, created_at=now))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def _refuse_unlikely_name(name: str, existing: Iterable[str]) -> None:
    """A new list whose name is probably a slip is created only with --new."""
    for other in existing:
        if other.casefold() == name.casefold():
            raise UsageError(
                f"no list named {name!r}, but there is {other!r}: use that name, "
                f"or pass --new to create {name!r}"
            )
    if looks_like_path(name):
        raise UsageError(
            f"{name!r} looks like a file, not a list name: the list name comes first "
            "('list import NAME FILE...'); pass --new to create a list so named"
        )


def looks_like_path(name: str) -> bool:
    lowered = name.lower()
    return (
        name == "-"
        or "/" in name
        or os.sep in name
        or lowered.endswith(FILE_SUFFIXES)
        or Path(name).is_file()
    )


@dataclass
class Sources:
    """The files of one import and how to read them (encodings found up front,
    so a worker process reads with the same ones the summary reports)."""

    paths: list[Path]
    column: str | None
    encodings: dict[str, str]  # by str(path); stdin's is filled in as it is read

    @classmethod
    def of(cls, paths: list[Path], column: str | None, encoding: str | None) -> Sources:
        encodings: dict[str, str] = {}
        for path in paths:
            found = encoding or detect_file_encoding(path)
            if found is not None:
                encodings[str(path)] = found
        return cls(paths, column, encodings)


class _Chunk(NamedTuple):
    """One batch of canonicalized input, small enough to send between processes."""

    canonical: list[str]
    # Each canonical form's first spelling in the input, "" where it is the
    # canonical form itself (stored as NULL: most addresses are spelled so).
    original: list[str]
    rejects: list[tuple[str, int, str, str]]  # file, line, input, reason
    lines: int
    read_bytes: int


def _stage(
    conn: Connection,
    source: Sources,
    rejects: RejectsCounter,
    on_bytes: Callable[[int], None] | None,
) -> tuple[int, int]:
    """Canonicalize every line into a staging table keyed by canonical form.

    The first spelling of an address wins (ON CONFLICT DO NOTHING), so
    duplicates fold while streaming and nothing is held in memory but a few
    chunks of rows. Large inputs are canonicalized in a worker process, so
    that work runs on a second core while this one inserts.
    """
    _create_staging(conn)
    insert = (
        "INSERT INTO import_staging (canonical, original) VALUES (?, ?) "
        "ON CONFLICT (canonical) DO NOTHING"
    )
    if conn.dialect.name != "sqlite":
        insert = insert.replace("?", "%s")
    use_worker = _input_bytes(source.paths) >= WORKER_MIN_BYTES
    chunks = _worker_chunks(source) if use_worker else _canonical_chunks(source)
    lines = accepted = 0
    # The driver's cursor takes the rows from a zip as it binds them: no
    # list of a million tuples built first (the same statement and rows).
    cursor: Any = conn.connection.cursor()
    with contextlib.closing(chunks), contextlib.closing(cursor):
        for chunk in chunks:
            for reject in chunk.rejects:
                rejects.add(*reject)
            if on_bytes is not None:
                on_bytes(chunk.read_bytes)
            lines += chunk.lines
            accepted += len(chunk.canonical)
            if chunk.canonical:
                cursor.executemany(insert, zip(chunk.canonical, chunk.original, strict=True))
    return lines, accepted


class _ChunkBuilder:
    """Rows of one chunk as they are canonicalized, in input order."""

    def __init__(self) -> None:
        self.canonical: list[str] = []
        self.original: list[str] = []
        self.rejects: list[tuple[str, int, str, str]] = []
        self.lines = 0  # address cells: lines that are not blank or comments
        self.read_bytes = 0

    def take(self) -> _Chunk:
        """The chunk so far; the builder starts the next one."""
        chunk = _Chunk(self.canonical, self.original, self.rejects, self.lines, self.read_bytes)
        self.canonical, self.original, self.rejects = [], [], []
        self.lines = self.read_bytes = 0
        return chunk

    def add_block(self, name: str, block: LineBlock | CellBlock) -> None:
        start = len(self.rejects)
        if isinstance(block, LineBlock):
            self._add_lines(name, block)
        else:
            for number, cell in block.rows:
                self._add_cell(name, number, cell)
        if block.rejects:  # the reader's, merged in line order with ours
            self.rejects[start:] = sorted(
                self.rejects[start:] + [(name, *reject) for reject in block.rejects],
                key=lambda reject: reject[1],
            )

    def _add_lines(self, name: str, block: LineBlock) -> None:
        lines = block.lines
        forms, leftover = scheme.canonicalize_block(block.text)
        start = 0
        for index in leftover:
            self._add_plain(lines[start:index], forms[start:index])
            cell = text_cell(lines[index])
            if cell is not None:
                self._add_cell(name, block.first + index, cell)
            start = index + 1
        self._add_plain(lines[start:], forms[start:])

    def _add_plain(self, lines: list[str], forms: list[str]) -> None:
        """Lines that are their own address cell and plain (see scheme.canonicalize_block)."""
        self.lines += len(lines)
        self.canonical += forms
        self.original += [
            "" if line == form else line for line, form in zip(lines, forms, strict=True)
        ]

    def _add_cell(self, name: str, number: int, cell: str) -> None:
        self.lines += 1
        result = scheme.try_canonicalize(cell)
        if isinstance(result, scheme.Reject):
            self.rejects.append((name, number, cell, result.value))
            return
        original = cell.strip(scheme.WHITE_SPACE)
        self.canonical.append(result)
        self.original.append("" if original == result else original)


def _canonical_chunks(source: Sources) -> Generator[_Chunk, None, None]:
    """Read and canonicalize ``source`` in order, a chunk of accepted rows at a time."""
    chunk = _ChunkBuilder()
    for path in source.paths:
        name = str(path)

        def count(size: int) -> None:
            chunk.read_bytes += size

        def found(encoding: str, name: str = name) -> None:
            source.encodings[name] = encoding

        blocks = read_address_blocks(
            path,
            column=source.column,
            encoding=source.encodings.get(name),
            on_bytes=count,
            on_encoding=found,
        )
        for block in blocks:
            chunk.add_block(name, block)
            if len(chunk.canonical) >= STAGING_CHUNK:
                yield chunk.take()
    yield chunk.take()


def _input_bytes(paths: list[Path]) -> int:
    """Total size of ``paths``, or 0 if any is not a regular file (pipes stay in-process)."""
    try:
        sizes = [p.stat() for p in paths]
    except OSError:
        return 0  # the reader reports the unreadable file
    return sum(s.st_size for s in sizes) if all(stat.S_ISREG(s.st_mode) for s in sizes) else 0


def _worker_chunks(source: Sources) -> Generator[_Chunk, None, None]:
    """The chunks of :func:`_canonical_chunks`, computed in a forked worker process."""
    # fork: the child needs no imports and no pickled arguments to start.
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_worker_main, args=(sender, receiver, source), daemon=True)
    worker.start()
    sender.close()
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                worker.join()  # for its exit code
                raise ImportWorkerError(
                    f"the canonicalization worker died (exit code {worker.exitcode})"
                ) from None
            if message is None:
                return
            if len(message) == 2:
                kind, text = message
                if kind == "input":
                    raise InputFileError(text)
                raise ImportWorkerError(f"the canonicalization worker failed: {text}")
            canonical, original, rejected, lines, read_bytes = message
            if not canonical:
                yield _Chunk([], [], rejected, lines, read_bytes)
            else:
                yield _Chunk(
                    canonical.split("\n"), original.split("\n"), rejected, lines, read_bytes
                )
    finally:
        receiver.close()
        if worker.is_alive():
            worker.terminate()
        worker.join()


def _worker_main(sender: MPConnection, receiver: MPConnection, source: Sources) -> None:
    # Ctrl-C reaches the whole process group; the parent handles it and ends us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The loop makes no reference cycles, and the collector would otherwise
    # rescan its growing chunk lists every few hundred allocations.
    gc.disable()
    # Our copy of the read end must go, or a killed parent would leave us
    # blocked on a full pipe instead of failing with EPIPE.
    receiver.close()
    try:
        for chunk in _canonical_chunks(source):
            # One string pickles far faster than a list of 20,000; accepted
            # addresses hold no white space, so a newline cannot occur in them.
            canonical, original = "\n".join(chunk.canonical), "\n".join(chunk.original)
            sender.send((canonical, original, chunk.rejects, chunk.lines, chunk.read_bytes))
        sender.send(None)
    except InputFileError as exc:
        sender.send(("input", str(exc)))
    except BrokenPipeError:
        pass  # the parent stopped listening: it failed or was interrupted
    except Exception as exc:  # a bug: report it in one line, not a child traceback
        sender.send(("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        sender.close()


def _create_staging(conn: Connection) -> None:
    conn.exec_driver_sql("DROP TABLE IF EXISTS import_staging")
    columns = "(canonical TEXT PRIMARY KEY, original TEXT NOT NULL)"
    # WITHOUT ROWID: the table is its primary-key index, one B-tree not two.
    suffix = " WITHOUT ROWID" if conn.dialect.name == "sqlite" else ""
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE import_staging {columns}{suffix}")


def _fold_staging(conn: Connection, list_id: int) -> tuple[int, int]:
    """Move staged rows into addresses and list_entries; return (unique, added)."""
    unique = conn.exec_driver_sql("SELECT COUNT(*) FROM import_staging").scalar_one()
    # Sorted inserts: new ids follow canonical order, so both the table and
    # its unique index grow at the end instead of at random pages.
    conn.exec_driver_sql(
        "INSERT INTO addresses (canonical) SELECT canonical FROM import_staging "
        "WHERE true ORDER BY canonical ON CONFLICT (canonical) DO NOTHING"
    )
    added = conn.execute(
        text(
            "INSERT INTO list_entries (list_id, address_id, original) "
            "SELECT :list_id, a.id, NULLIF(s.original, '') FROM import_staging s "
            "JOIN addresses a ON a.canonical = s.canonical "
            "WHERE true ORDER BY a.id ON CONFLICT (list_id, address_id) DO NOTHING"
        ),
        {"list_id": list_id},
    ).rowcount
    return int(unique), int(added)


def _replace_entries(conn: Connection, list_id: int, accepted: int) -> int:
    """--replace: take off the list every entry not staged by this import."""
    if accepted == 0:
        raise UsageError(
            "the files hold no address: --replace would empty the list "
            "(to drop a list, use 'scrubber list rm')"
        )
    removed = conn.execute(
        text(
            "DELETE FROM list_entries WHERE list_id = :list_id AND NOT EXISTS "
            "(SELECT 1 FROM import_staging s JOIN addresses a ON a.canonical = s.canonical "
            "WHERE a.id = list_entries.address_id)"
        ),
        {"list_id": list_id},
    ).rowcount
    return int(removed)


def remove_list(store: Store, name: str, *, dry_run: bool = False) -> RemoveSummary:
    """Delete list ``name``: its entries, its import history, its place in
    batches. Suppressions stay (they are the operator's, not the list's).
    The address rows stay too: deleting one makes the database check every
    table that refers to addresses, a scan each without an index of its own
    (over ten minutes for 100,000 addresses on SQLite)."""
    with store.write_connection(dry_run=dry_run) as conn:
        list_id = conn.execute(select(MailingList.id).where(MailingList.name == name)).scalar()
        if list_id is None:
            raise NotFoundError(f"no list named {name!r}; 'scrubber list ls' shows the lists")
        entries = conn.execute(delete(ListEntry).where(ListEntry.list_id == list_id)).rowcount
        imports = conn.execute(delete(ImportRun).where(ImportRun.list_id == list_id)).rowcount
        batches = conn.execute(delete(BatchList).where(BatchList.list_id == list_id)).rowcount
        conn.execute(delete(ListExport).where(ListExport.list_id == list_id))
        conn.execute(delete(MailingList).where(MailingList.id == list_id))
    return RemoveSummary(name, entries, imports, batches, dry_run)


def rename_list(store: Store, old: str, new: str) -> None:
    """Give list ``old`` the name ``new`` (refused if another list has it, in any case)."""
    validate_name(new)
    with store.write_connection() as conn:
        ids = {n: i for n, i in conn.execute(select(MailingList.name, MailingList.id))}
        if old not in ids:
            raise NotFoundError(f"no list named {old!r}; 'scrubber list ls' shows the lists")
        for other in ids:
            if other != old and other.casefold() == new.casefold():
                raise UsageError(
                    f"a list named {other!r} exists; pick another name "
                    "(or 'scrubber list rm' that one first)"
                )
        conn.execute(update(MailingList).where(MailingList.id == ids[old]).values(name=new))


def hash_lists(
    store: Store,
    names: Sequence[str],
    params: scheme.Params,
    epoch_days: int,
    *,
    executor: str = "threads",
    workers: int | None = None,
    on_done: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> hashing.HashSummary:
    """``list hash``: cache the digests of lists ``names`` in the current salt
    epoch (only addresses not cached yet), on the executor named ``executor``
    (see :func:`hashing.open_executor`)."""
    with store.read() as session:
        ids = [get_list(session, name).id for name in names]
    # The executor before the epoch: a bad one must leave the database as it was.
    pool = hashing.open_executor(executor, workers)
    try:
        epoch = hashing.current_epoch(store, params, epoch_days)
        return hashing.HashEngine(store, pool).ensure(epoch, ids, on_done, on_total)
    finally:
        pool.close()


def list_infos(store: Store) -> list[ListInfo]:
    with store.read() as session:
        suppressed = (
            select(ListEntry.list_id, func.count().label("n"))
            .join(Suppression, Suppression.address_id == ListEntry.address_id)
            .group_by(ListEntry.list_id)
            .subquery()
        )
        total = (
            select(ListEntry.list_id, func.count().label("n"))
            .group_by(ListEntry.list_id)
            .subquery()
        )
        rows = session.execute(
            select(MailingList, total.c.n, suppressed.c.n)
            .outerjoin(total, total.c.list_id == MailingList.id)
            .outerjoin(suppressed, suppressed.c.list_id == MailingList.id)
            .order_by(MailingList.name)
        ).all()
    return [ListInfo(m.name, n or 0, s or 0, m.created_at, m.last_import_at) for m, n, s in rows]


def list_info(store: Store, name: str) -> ListInfo:
    for info in list_infos(store):
        if info.name == name:
            return info
    raise NotFoundError(f"no list named {name!r}; 'scrubber list ls' shows the lists")


def import_history(store: Store, name: str) -> list[ImportRun]:
    with store.read() as session:
        mailing_list = get_list(session, name)
        return list(
            session.scalars(
                select(ImportRun)
                .where(ImportRun.list_id == mailing_list.id)
                .order_by(ImportRun.started_at)
            )
        )


def iter_export(store: Store, name: str, page: int = 10_000) -> Iterator[str]:
    """Original spellings of the list's addresses, minus every suppressed one.

    The list is looked up now (NotFoundError before any output is written);
    the rows stream in pages.
    """
    return (original for original, _ in iter_export_rows(store, name, page))


def iter_export_rows(store: Store, name: str, page: int = 10_000) -> Iterator[tuple[str, str]]:
    """(original spelling, canonical form) of each address :func:`iter_export` writes."""
    with store.read() as session:
        list_id = get_list(session, name).id
    return _export_pages(store, list_id, page)


@dataclass(frozen=True)
class ExportStart:
    """An export under way: its list and the moment before its first read."""

    list_id: int
    started_at: datetime


def begin_export(store: Store, name: str) -> ExportStart:
    """Note the start of an export of ``name`` (before any of its rows are read)."""
    started = utcnow()
    with store.read() as session:
        return ExportStart(get_list(session, name).id, started)


def finish_export(store: Store, start: ExportStart, count: int) -> None:
    """Record a finished export: every address suppressed before it started was left out.

    The ledger report reads these rows to say when sending stopped.
    """
    with store.write() as session:
        session.add(
            ListExport(
                list_id=start.list_id,
                started_at=start.started_at,
                finished_at=utcnow(),
                count=count,
            )
        )


def write_export(addresses: Iterable[str], output: Path, *, mode: int = FILE_MODE) -> int:
    """Write ``addresses`` one a line to ``output`` atomically with ``mode``; return the count."""
    try:
        with AtomicFile.text(output, mode=mode) as handle:
            count = sum(handle.write(a + "\n") > 0 for a in addresses)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from None
    return count


def _export_pages(store: Store, list_id: int, page: int) -> Iterator[tuple[str, str]]:
    last = 0
    while True:
        with store.read() as session:
            rows = session.execute(
                select(
                    ListEntry.address_id,
                    func.coalesce(ListEntry.original, Address.canonical),
                    Address.canonical,
                )
                .join(Address, Address.id == ListEntry.address_id)
                .outerjoin(Suppression, Suppression.address_id == ListEntry.address_id)
                .where(ListEntry.list_id == list_id, ListEntry.address_id > last)
                .where(Suppression.address_id.is_(None))
                .order_by(ListEntry.address_id)
                .limit(page)
            ).all()
        if not rows:
            return
        for _, original, canonical in rows:
            yield original, canonical
        last = rows[-1][0]


def suppress(
    store: Store, addresses: Iterable[str], *, origin: str | None = None, dry_run: bool = False
) -> SuppressSummary:
    """Suppress addresses across all lists, permanently (the ledger's manual
    channel); returns counts and rejects. ``dry_run`` counts, writes nothing."""
    rejected: list[tuple[str, str]] = []
    canonicals: set[str] = set()
    for raw in addresses:
        result = scheme.try_canonicalize(raw)
        if isinstance(result, scheme.Reject):
            rejected.append((raw, result.value))
        else:
            canonicals.add(result)
    now = utcnow()
    entries = (ledger.manual(c, origin=origin, now=now) for c in canonicals)
    summary = ledger.record(store, entries, dry_run=dry_run)
    return SuppressSummary(summary.added, summary.already, rejected, dry_run)
