"""List import, export and suppression against real SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import gzip
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scrubber import lists
from scrubber.errors import InputFileError, NotFoundError, UsageError
from scrubber.readers import read_addresses
from scrubber.store import Store
from scrubber.workspace import Workspace

SAMPLES = Path(__file__).resolve().parent.parent / "sample_lists"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _import(
    store: Store, name: str, *paths: Path, column: str | None = None
) -> lists.ImportSummary:
    rejects = paths[0].parent / f"rejects-{name}.csv"
    return lists.import_files(store, name, list(paths), rejects_path=rejects, column=column)


def test_text_import_counts_folds_and_rejects(store: Store, tmp_path: Path) -> None:
    source = _write(
        tmp_path / "a.txt",
        "# a comment line\n"
        "Jane.Doe@Example.com\n"
        "\n"
        "jane.doe+promo@example.com\n"
        "J.ohn@googlemail.com\n"
        "john@gmail.com\n"
        "not an address\n"
        "bob@example.org\n"
        "user@[192.0.2.1]\n",
    )
    summary = _import(store, "customers", source)
    assert (summary.lines, summary.accepted, summary.unique, summary.added) == (7, 5, 3, 3)
    assert (summary.rejected, summary.folded, summary.already_listed) == (2, 2, 0)
    assert summary.rejects_path is not None
    with summary.rejects_path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["file", "line", "input", "reason"],
        [str(source), "7", "not an address", "whitespace"],
        [str(source), "9", "user@[192.0.2.1]", "domain-literal"],
    ]
    # The first spelling of each address is the one kept for export.
    assert sorted(lists.iter_export(store, "customers")) == [
        "J.ohn@googlemail.com",
        "Jane.Doe@Example.com",
        "bob@example.org",
    ]


def test_canonical_spellings_are_stored_once(store: Store, tmp_path: Path) -> None:
    """A spelling equal to the canonical form is not stored twice; export still has it."""
    source = _write(
        tmp_path / "a.txt", "plain@example.com\nMixed@Example.com\n  spaced@example.com \n"
    )
    _import(store, "l", source)
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT a.canonical, e.original FROM list_entries e "
            "JOIN addresses a ON a.id = e.address_id ORDER BY a.canonical"
        ).all()
    assert [tuple(row) for row in stored] == [
        ("mixed@example.com", "Mixed@Example.com"),
        ("plain@example.com", None),
        ("spaced@example.com", None),
    ]
    assert sorted(lists.iter_export(store, "l")) == [
        "Mixed@Example.com",
        "plain@example.com",
        "spaced@example.com",
    ]


def test_reimport_is_idempotent(store: Store, tmp_path: Path) -> None:
    source = _write(tmp_path / "a.txt", "a@example.com\nb@example.com\nA@EXAMPLE.COM\n")
    first = _import(store, "l", source)
    again = _import(store, "l", source)
    assert first.added == 2
    assert (again.added, again.unique, again.already_listed) == (0, 2, 2)
    assert lists.list_info(store, "l").addresses == 2
    assert len(lists.import_history(store, "l")) == 2


def test_import_leaves_no_staging_table_in_the_pool(store: Store, tmp_path: Path) -> None:
    """The import's connection, which holds the staging table, is closed
    rather than pooled; the connections that remain check foreign keys."""
    source = _write(tmp_path / "a.txt", "a@example.com\nb@example.com\n")
    for _ in range(2):
        assert _import(store, "l", source).unique == 2
    staging = (
        "SELECT count(*) FROM sqlite_temp_master WHERE name = 'import_staging'"
        if store.is_sqlite
        else "SELECT count(*) FROM pg_tables WHERE tablename = 'import_staging'"
    )
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql(staging).scalar_one() == 0
        if store.is_sqlite:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    assert lists.list_info(store, "l").addresses == 2


def test_no_rejects_means_no_rejects_file(store: Store, tmp_path: Path) -> None:
    summary = _import(store, "l", _write(tmp_path / "a.txt", "a@example.com\n"))
    assert summary.rejects_path is None
    assert not list(tmp_path.glob("rejects-*")) and not list(tmp_path.glob(".*"))


def test_csv_auto_detects_the_address_column(store: Store, tmp_path: Path) -> None:
    source = _write(
        tmp_path / "export.csv",
        "\ufeffid;Name;E-Mail;city\n1;Jane;jane@example.com;Paris\n2;Bob;bob@example.org;Rome\n"
        "3;Nobody;;Oslo\n",
    )
    summary = _import(store, "csv", source)
    assert (summary.lines, summary.added, summary.rejected) == (2, 2, 0)
    assert sorted(lists.iter_export(store, "csv")) == ["bob@example.org", "jane@example.com"]


@pytest.mark.parametrize("column", ["contact", "2"])
def test_csv_column_option(store: Store, tmp_path: Path, column: str) -> None:
    source = _write(
        tmp_path / "people.csv",
        'name,contact,backup\n"Doe, Jane",jane@example.com,other@example.com\n'
        "Bob,bob@example.org,x\n",
    )
    summary = _import(store, "people", source, column=column)
    assert summary.added == 2
    assert sorted(lists.iter_export(store, "people")) == ["bob@example.org", "jane@example.com"]


def test_headerless_csv_with_one_address_column(store: Store, tmp_path: Path) -> None:
    source = _write(tmp_path / "raw.csv", "Jane,jane@example.com\nBob,bob@example.org\n")
    assert _import(store, "raw", source).added == 2


def test_gzip_of_text_and_csv(store: Store, tmp_path: Path) -> None:
    text_gz = tmp_path / "a.txt.gz"
    text_gz.write_bytes(gzip.compress(b"one@example.com\ntwo@example.com\n"))
    csv_gz = tmp_path / "b.csv.gz"
    csv_gz.write_bytes(gzip.compress(b"email,name\nthree@example.com,T\none@example.com,O\n"))
    summary = _import(store, "gz", text_gz, csv_gz)
    assert (summary.lines, summary.unique, summary.added) == (4, 3, 3)


def test_csv_without_address_column_changes_nothing(store: Store, tmp_path: Path) -> None:
    _import(store, "keep", _write(tmp_path / "a.txt", "a@example.com\n"))
    bad = _write(tmp_path / "bad.csv", "name,city\nJane,Paris\nBob,Rome\n")
    with pytest.raises(InputFileError, match="no address column"):
        _import(store, "keep", _write(tmp_path / "b.txt", "b@example.com\n"), bad)
    with pytest.raises(InputFileError):
        _import(store, "new-list", bad)
    assert [i.name for i in lists.list_infos(store)] == ["keep"]
    assert list(lists.iter_export(store, "keep")) == ["a@example.com"]
    assert len(lists.import_history(store, "keep")) == 1


@pytest.mark.parametrize(
    "garbage",
    [bytes(range(256)) * 8, b"ok@example.com\n\x00\x01\x02binary\n", b"\x1f\x8bnot really gzip"],
    ids=["random-bytes", "nul-byte", "broken-gzip"],
)
def test_binary_garbage_is_refused_whole(store: Store, tmp_path: Path, garbage: bytes) -> None:
    bad = tmp_path / "garbage.txt"
    bad.write_bytes(garbage)
    with pytest.raises(InputFileError):
        _import(store, "g", _write(tmp_path / "ok.txt", "fine@example.com\n"), bad)
    assert lists.list_infos(store) == []


def test_missing_file_is_an_input_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="cannot read"):
        _import(store, "x", tmp_path / "nope.txt")


def test_bad_list_name(store: Store, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        _import(store, " padded ", _write(tmp_path / "a.txt", "a@example.com\n"))


def test_unknown_list(store: Store) -> None:
    with pytest.raises(NotFoundError):
        lists.iter_export(store, "nope")
    with pytest.raises(NotFoundError):
        lists.list_info(store, "nope")


def test_suppression_is_across_lists_and_permanent(store: Store, tmp_path: Path) -> None:
    _import(store, "a", _write(tmp_path / "a.txt", "Jane@Example.com\nbob@example.org\n"))
    _import(store, "b", _write(tmp_path / "b.txt", "jane+b@example.com\ncarol@example.net\n"))
    summary = lists.suppress(store, ["JANE@example.com", "nobody@example.com", "garbage"])
    assert (summary.added, summary.already) == (2, 0)
    assert summary.rejected == [("garbage", "no-at-sign")]
    assert list(lists.iter_export(store, "a")) == ["bob@example.org"]
    assert list(lists.iter_export(store, "b")) == ["carol@example.net"]
    # Re-importing a suppressed address keeps it listed but never exported.
    _import(store, "a", _write(tmp_path / "c.txt", "jane@example.com\n"))
    assert list(lists.iter_export(store, "a")) == ["bob@example.org"]
    # An address suppressed before it was ever listed stays suppressed.
    _import(store, "c", _write(tmp_path / "d.txt", "nobody+x@example.com\nok@example.com\n"))
    assert list(lists.iter_export(store, "c")) == ["ok@example.com"]
    infos = {i.name: (i.addresses, i.suppressed) for i in lists.list_infos(store)}
    assert infos == {"a": (2, 1), "b": (2, 1), "c": (2, 1)}
    assert lists.suppress(store, ["jane@example.com"]).already == 1


def test_export_pages_through_large_lists(store: Store, tmp_path: Path) -> None:
    addresses = [f"user{n}@example.com" for n in range(2500)]
    _import(store, "big", _write(tmp_path / "big.txt", "\n".join(addresses) + "\n"))
    lists.suppress(store, addresses[::10])
    exported = list(lists.iter_export(store, "big", page=100))
    assert sorted(exported) == sorted(set(addresses) - set(addresses[::10]))


def test_sample_lists(store: Store, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    customers = lists.import_files(
        store, "customers", [SAMPLES / "customers.csv.gz"], rejects_path=rejects
    )
    assert (customers.unique, customers.added, customers.rejected) == (10_000, 10_000, 300)
    assert customers.folded == 1500
    newsletter = lists.import_files(
        store, "newsletter", [SAMPLES / "newsletter.txt"], rejects_path=rejects
    )
    # 3,000 customers in other spellings + 1,000 of its own; 5 malformed lines.
    assert (newsletter.unique, newsletter.rejected) == (4000, 5)
    with store.engine.connect() as check:
        overlap = check.exec_driver_sql(
            "SELECT COUNT(*) FROM list_entries a JOIN list_entries b "
            "ON a.address_id = b.address_id AND a.list_id < b.list_id"
        ).scalar_one()
    assert overlap == 3000


def test_reader_streams_from_a_fifo(tmp_path: Path) -> None:
    """The reader yields the first row before the file is complete."""
    fifo = tmp_path / "list.fifo"
    os.mkfifo(fifo)
    got_first = threading.Event()

    def writer() -> None:
        with fifo.open("w", encoding="utf-8") as out:
            out.write("first@example.com\n")
            out.flush()
            assert got_first.wait(10), "reader did not stream"
            out.write("second@example.com\n")

    thread = threading.Thread(target=writer)
    thread.start()
    rows = read_addresses(fifo)
    assert next(rows) == (1, "first@example.com")
    got_first.set()
    assert list(rows) == [(2, "second@example.com")]
    thread.join()


def test_the_default_rejects_file_is_under_the_workspace_with_a_safe_name(
    workspace: Workspace,
) -> None:
    when = datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC)
    path = workspace.rejects_path("a/b c..d", when)
    assert path == workspace.root / "rejects" / "a_b_c..d-20260301T040506.csv"
