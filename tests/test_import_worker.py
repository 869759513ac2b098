"""Large imports canonicalize in a forked worker process: same results, same failures.

The worker is used for inputs of at least ``lists.WORKER_MIN_BYTES``; these
tests lower that bound (or raise it) so both paths run on the same small
inputs against real SQLite and PostgreSQL and must agree exactly.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from collections.abc import Generator
from pathlib import Path

import pytest

from scrubber import lists
from scrubber.errors import ImportWorkerError, InputFileError
from scrubber.store import Store
from scrubber.workspace import Workspace, open_store

SAMPLES = Path(__file__).resolve().parent.parent / "sample_lists"
IN_PROCESS = 1 << 62


@pytest.fixture(params=[0, IN_PROCESS], ids=["worker", "in-process"])
def worker_bound(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    bound: int = request.param
    monkeypatch.setattr(lists, "WORKER_MIN_BYTES", bound)
    return bound


def _mixed_inputs(tmp_path: Path) -> list[Path]:
    """Text, gzip of text and CSV, with duplicates across files and rejects."""
    text = tmp_path / "a.txt"
    text.write_text("First@Example.com\n# comment\nbroken line\nsecond+x@example.org\n")
    zipped = tmp_path / "b.txt.gz"
    lines = "".join(f"user{n}@mail{n % 7}.example\n" for n in range(50_000))
    zipped.write_bytes(gzip.compress(f"first@example.com\n{lines}no-at-sign\n".encode()))
    table = tmp_path / "c.csv"
    table.write_text("name,email\nA,SECOND@example.org\nB,b\u00fccher@b\u00fccher.example\nC,@x\n")
    return [text, zipped, table]


def _contents(opened: Store, name: str) -> list[tuple[str, str]]:
    with opened.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT a.canonical, COALESCE(e.original, a.canonical) FROM list_entries e "
            "JOIN addresses a ON a.id = e.address_id JOIN lists l ON l.id = e.list_id "
            f"WHERE l.name = '{name}' ORDER BY a.canonical"
        ).all()
    return [(canonical, original) for canonical, original in rows]


def test_worker_and_in_process_import_agree(
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = _mixed_inputs(tmp_path)
    summaries, reports = [], []
    for name, bound in (("forked", 0), ("inline", IN_PROCESS)):
        monkeypatch.setattr(lists, "WORKER_MIN_BYTES", bound)
        progress: list[int] = []
        rejects = tmp_path / f"rejects-{name}.csv"
        summary = lists.import_files(
            store, name, paths, rejects_path=rejects, on_bytes=progress.append
        )
        summaries.append(summary)
        reports.append(list(csv.reader(rejects.read_text(encoding="utf-8").splitlines())))
        # Progress counts every byte read from disk, once.
        assert sum(progress) == sum(p.stat().st_size for p in paths)
    forked, inline = summaries
    assert (forked.lines, forked.accepted, forked.unique, forked.added, forked.rejected) == (
        inline.lines,
        inline.accepted,
        inline.unique,
        inline.added,
        inline.rejected,
    )
    assert (forked.lines, forked.unique, forked.folded, forked.rejected) == (50_008, 50_003, 2, 3)
    assert reports[0] == reports[1]
    assert [row[3] for row in reports[0][1:]] == ["whitespace", "no-at-sign", "empty-local-part"]
    assert _contents(store, "forked") == _contents(store, "inline")
    # The first spelling in file order wins, across files.
    assert ("first@example.com", "First@Example.com") in _contents(store, "forked")
    assert ("second@example.org", "second+x@example.org") in _contents(store, "forked")


def test_sample_lists_through_the_worker(
    store: Store,
    tmp_path: Path,
    worker_bound: int,
) -> None:
    rejects = tmp_path / "rejects.csv"
    customers = lists.import_files(
        store, "customers", [SAMPLES / "customers.csv.gz"], rejects_path=rejects
    )
    assert (customers.unique, customers.added, customers.rejected) == (10_000, 10_000, 300)
    again = lists.import_files(
        store, "customers", [SAMPLES / "customers.csv.gz"], rejects_path=rejects
    )
    assert (again.unique, again.added) == (10_000, 0)


@pytest.mark.parametrize(
    "garbage",
    [b"ok@example.com\n\x00\x01\x02binary\n", b"\x1f\x8bnot really gzip", b"\xff\xfe\xfa" * 99],
    ids=["nul-byte", "broken-gzip", "not-utf8"],
)
def test_bad_input_in_the_worker_changes_nothing(
    store: Store,
    tmp_path: Path,
    worker_bound: int,
    garbage: bytes,
) -> None:
    good = tmp_path / "good.txt"
    good.write_text("".join(f"u{n}@example.com\n" for n in range(30_000)))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(garbage)
    rejects = tmp_path / "rejects.csv"
    with pytest.raises(InputFileError, match=r"bad\.txt"):
        lists.import_files(store, "l", [good, bad], rejects_path=rejects)
    assert lists.list_infos(store) == []
    assert not rejects.exists() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(
    ("failure", "message"),
    [("exit", "died (exit code 3)"), ("raise", "failed: RuntimeError: boom")],
)
def test_a_failed_worker_is_an_error_and_changes_nothing(
    tmp_path: Path,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    failure: str,
    message: str,
) -> None:
    def failing(source: lists.Sources) -> Generator[lists._Chunk, None, None]:
        yield lists._Chunk(["a@example.com"], [""], [], 1, 14)
        # The forked worker runs this; the parent must not keep half a file.
        if failure == "exit":
            os._exit(3)
        raise RuntimeError("boom")

    monkeypatch.setattr(lists, "WORKER_MIN_BYTES", 0)
    monkeypatch.setattr(lists, "_canonical_chunks", failing)
    source = tmp_path / "l.txt"
    source.write_text("a@example.com\nb@example.com\n")
    with open_store(workspace) as opened:
        with pytest.raises(ImportWorkerError, match=re.escape(message)):
            lists.import_files(opened, "l", [source], rejects_path=tmp_path / "r.csv")
        assert lists.list_infos(opened) == []
    assert "Traceback" not in capfd.readouterr().err


def test_pipes_and_small_files_stay_in_process(tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_text("a@example.com\n")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert lists._input_bytes([small]) == small.stat().st_size < lists.WORKER_MIN_BYTES
    assert lists._input_bytes([small, fifo]) == 0
    assert lists._input_bytes([small, tmp_path / "missing.txt"]) == 0
