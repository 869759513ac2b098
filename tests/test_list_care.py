"""Looking after lists: rm, rename, --replace, --dry-run and the name checks
of import, against real SQLite and PostgreSQL (the `store` fixture)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from scrubber import hashing, lists
from scrubber.batch import create
from scrubber.config import Settings
from scrubber.errors import NotFoundError, UsageError
from scrubber.keys import OperatorKey
from scrubber.store import Store
from scrubber.workspace import Workspace, open_store
from tests.support import CliResult, run_cli


def _write(path: Path, *addresses: str) -> Path:
    path.write_text("".join(a + "\n" for a in addresses), encoding="utf-8")
    return path


def _import(store: Store, name: str, path: Path, **options: bool) -> lists.ImportSummary:
    rejects = path.parent / f"rejects-{name}.csv"
    return lists.import_files(store, name, [path], rejects_path=rejects, **options)


def _snapshot(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """Every row a list operation may touch, to show a refused one changed nothing."""
    tables = {
        "lists": "SELECT name FROM lists ORDER BY name",
        "entries": "SELECT list_id, address_id, original FROM list_entries ORDER BY 1, 2",
        "addresses": "SELECT id, canonical FROM addresses ORDER BY id",
        "imports": "SELECT list_id, source, lines FROM imports ORDER BY id",
        "suppressions": "SELECT address_id, channel FROM suppressions ORDER BY address_id",
        "digests": "SELECT epoch_id, address_id FROM digests ORDER BY 1, 2",
        "batch_lists": "SELECT batch_id, list_id FROM batch_lists ORDER BY 1, 2",
    }
    with store.engine.connect() as conn:
        return {k: [tuple(r) for r in conn.execute(text(q))] for k, q in tables.items()}


def test_rm_takes_entries_and_history_keeps_suppressions(store: Store, tmp_path: Path) -> None:
    _import(store, "a", _write(tmp_path / "a.txt", "only-a@example.com", "both@example.com"))
    _import(store, "a", _write(tmp_path / "a2.txt", "quiet@example.com"))
    _import(store, "b", _write(tmp_path / "b.txt", "both@example.com", "b@example.com"))
    lists.suppress(store, ["quiet@example.com"])

    summary = lists.remove_list(store, "a")

    assert (summary.entries, summary.imports, summary.batches) == (3, 2, 0)
    assert [i.name for i in lists.list_infos(store)] == ["b"]
    with pytest.raises(NotFoundError):
        lists.import_history(store, "a")
    with store.engine.connect() as conn:
        left = conn.execute(text("SELECT COUNT(*) FROM list_entries")).scalar_one()
        runs = conn.execute(text("SELECT COUNT(*) FROM imports")).scalar_one()
    assert (left, runs) == (2, 1)  # list b's
    # The suppression outlives the list: a new list holding it still leaves it out.
    assert lists.suppress(store, ["quiet@example.com"]).already == 1
    _import(store, "c", _write(tmp_path / "c.txt", "quiet@example.com", "c@example.com"))
    assert list(lists.iter_export(store, "c")) == ["c@example.com"]
    assert list(lists.iter_export(store, "b")) == ["both@example.com", "b@example.com"]


def test_rm_dry_run_counts_and_changes_nothing(store: Store, tmp_path: Path) -> None:
    _import(store, "a", _write(tmp_path / "a.txt", "x@example.com", "y@example.com"))
    before = _snapshot(store)
    summary = lists.remove_list(store, "a", dry_run=True)
    assert (summary.entries, summary.imports, summary.dry_run) == (2, 1, True)
    assert _snapshot(store) == before


def test_rm_unknown_list_changes_nothing(store: Store, tmp_path: Path) -> None:
    _import(store, "a", _write(tmp_path / "a.txt", "x@example.com"))
    before = _snapshot(store)
    with pytest.raises(NotFoundError, match="no list named 'A'"):
        lists.remove_list(store, "A")
    assert _snapshot(store) == before


def test_rename_keeps_entries_and_history(store: Store, tmp_path: Path) -> None:
    _import(store, "old", _write(tmp_path / "a.txt", "x@example.com"))
    lists.rename_list(store, "old", "new")
    assert [i.name for i in lists.list_infos(store)] == ["new"]
    assert list(lists.iter_export(store, "new")) == ["x@example.com"]
    assert len(lists.import_history(store, "new")) == 1
    lists.rename_list(store, "new", "New")  # a change of case of the same list
    assert [i.name for i in lists.list_infos(store)] == ["New"]


@pytest.mark.parametrize(
    ("old", "new", "error", "fragment"),
    [
        ("nope", "x", NotFoundError, "no list named 'nope'"),
        ("a", "b", UsageError, "a list named 'b' exists"),
        ("a", "B", UsageError, "a list named 'b' exists"),
        ("a", " padded", UsageError, "invalid list name"),
    ],
)
def test_rename_refusals_change_nothing(
    store: Store, tmp_path: Path, old: str, new: str, error: type[Exception], fragment: str
) -> None:
    _import(store, "a", _write(tmp_path / "a.txt", "x@example.com"))
    _import(store, "b", _write(tmp_path / "b.txt", "y@example.com"))
    before = _snapshot(store)
    with pytest.raises(error, match=fragment):
        lists.rename_list(store, old, new)
    assert _snapshot(store) == before


def test_import_replace_makes_the_list_equal_to_the_file(store: Store, tmp_path: Path) -> None:
    _import(store, "l", _write(tmp_path / "a.txt", "stay@example.com", "go@example.com"))
    _import(store, "other", _write(tmp_path / "o.txt", "go@example.com"))
    lists.suppress(store, ["gone-but-suppressed@example.com", "stay@example.com"])
    _import(store, "l", _write(tmp_path / "b.txt", "gone-but-suppressed@example.com"))

    fresh = _write(tmp_path / "fresh.txt", "Stay@Example.com", "new@example.com")
    summary = _import(store, "l", fresh, replace=True)

    assert (summary.added, summary.removed) == (1, 2)
    assert lists.list_info(store, "l").addresses == 2
    with store.engine.connect() as conn:
        listed = {
            r[0]
            for r in conn.execute(
                text(
                    "SELECT a.canonical FROM list_entries e JOIN addresses a "
                    "ON a.id = e.address_id JOIN lists l ON l.id = e.list_id WHERE l.name = 'l'"
                )
            )
        }
    assert listed == {"stay@example.com", "new@example.com"}
    # Suppressions untouched; the other list keeps its entry.
    assert lists.suppress(store, ["gone-but-suppressed@example.com"]).already == 1
    assert lists.suppress(store, ["stay@example.com"]).already == 1
    assert list(lists.iter_export(store, "other")) == ["go@example.com"]
    assert list(lists.iter_export(store, "l")) == ["new@example.com"]


def test_import_replace_refuses_to_empty_a_list(store: Store, tmp_path: Path) -> None:
    _import(store, "l", _write(tmp_path / "a.txt", "x@example.com"))
    before = _snapshot(store)
    with pytest.raises(UsageError, match="--replace would empty the list"):
        _import(store, "l", _write(tmp_path / "junk.txt", "not an address"), replace=True)
    assert _snapshot(store) == before


def test_import_dry_run_counts_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    _import(store, "l", _write(tmp_path / "a.txt", "x@example.com", "y@example.com"))
    before = _snapshot(store)
    source = _write(tmp_path / "b.txt", "y@example.com", "z@example.com", "not an address")
    summary = _import(store, "l", source, replace=True, dry_run=True)
    assert (summary.added, summary.removed, summary.rejected) == (1, 1, 1)
    assert summary.dry_run and summary.rejects_path is None
    assert _snapshot(store) == before
    assert not list(tmp_path.glob("rejects-*")) and not list(tmp_path.glob(".*"))
    # A dry run into a new list creates nothing either.
    assert _import(store, "fresh", source, dry_run=True).added == 2
    assert _snapshot(store) == before


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("Customers", "no list named 'Customers', but there is 'customers'"),
        ("customers.csv.gz", "looks like a file"),
        ("exports/list", "looks like a file"),
    ],
)
def test_unlikely_new_names_need_new(
    store: Store, tmp_path: Path, name: str, fragment: str
) -> None:
    _import(store, "customers", _write(tmp_path / "a.txt", "x@example.com"))
    source = _write(tmp_path / "b.txt", "y@example.com")
    before = _snapshot(store)
    with pytest.raises(UsageError, match=fragment) as caught:
        _import(store, name, source)
    assert "--new" in str(caught.value)
    assert _snapshot(store) == before
    assert _import(store, name, source, new=True).added == 1
    assert name in {i.name for i in lists.list_infos(store)}


def test_new_refuses_an_existing_list(store: Store, tmp_path: Path) -> None:
    source = _write(tmp_path / "a.txt", "x@example.com")
    _import(store, "l", source)
    before = _snapshot(store)
    with pytest.raises(UsageError, match="list 'l' exists already; leave out --new"):
        _import(store, "l", source, new=True)
    assert _snapshot(store) == before


def test_suppress_dry_run_counts_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    _import(store, "l", _write(tmp_path / "a.txt", "x@example.com"))
    lists.suppress(store, ["old@example.com"])
    before = _snapshot(store)
    summary = lists.suppress(store, ["old@example.com", "x@example.com", "bad"], dry_run=True)
    assert (summary.added, summary.already, len(summary.rejected)) == (1, 1, 1)
    assert _snapshot(store) == before


def test_rm_of_a_batched_list_keeps_the_batch_working(store: Store, tmp_path: Path) -> None:
    """A batch keeps its proofs (pings still suppress); it no longer names the list."""
    settings = Settings(argon2_t=1, argon2_m=64)
    _import(store, "a", _write(tmp_path / "a.txt", "x@example.com", "y@example.com"))
    request = create.request_from_settings(settings, ["a"])
    executor = hashing.ThreadExecutor(1)
    try:
        batch = create.create_batch(
            store, settings, OperatorKey.generate(), request, executor
        ).batch
    finally:
        executor.close()

    summary = lists.remove_list(store, "a")

    assert (summary.entries, summary.batches) == (2, 1)
    with store.engine.connect() as conn:
        proofs = conn.execute(
            text(
                "SELECT a.canonical FROM batch_entries e JOIN addresses a ON a.id = e.address_id "
                "WHERE e.batch_id = :b ORDER BY 1"
            ),
            {"b": batch.id},
        ).all()
        digests = conn.execute(text("SELECT COUNT(*) FROM digests")).scalar_one()
    assert [r[0] for r in proofs] == ["x@example.com", "y@example.com"]
    assert digests == 2


# -- the commands, as an operator types them (SQLite workspace) ---------------


def _one_line_error(result: CliResult, fragment: str, code: int = 2) -> None:
    assert result.returncode == code, result.stdout
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in result.stderr


def test_cli_forgotten_list_name_and_case_typo_need_new(
    workspace: Workspace, tmp_path: Path
) -> None:
    customers = _write(tmp_path / "customers.txt", "x@example.com")
    newsletter = _write(tmp_path / "newsletter.txt", "y@example.com")
    ws = workspace.root
    assert run_cli("list", "import", "customers", str(customers), workspace=ws).returncode == 0
    store = open_store(workspace)
    before = _snapshot(store)
    forgot = run_cli("list", "import", str(customers), str(newsletter), workspace=ws)
    _one_line_error(forgot, "looks like a file, not a list name")
    assert "--new" in forgot.stderr
    typo = run_cli("list", "import", "Customers", str(newsletter), workspace=ws)
    _one_line_error(typo, "but there is 'customers'")
    assert _snapshot(store) == before
    created = run_cli("list", "import", "Customers", str(newsletter), "--new", workspace=ws)
    assert created.returncode == 0, created.stderr
    store.close()


def test_cli_dry_runs_write_nothing(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace.root
    source = _write(tmp_path / "a.txt", "x@example.com", "y@example.com")
    assert run_cli("list", "import", "l", str(source), workspace=ws).returncode == 0
    store = open_store(workspace)
    before = _snapshot(store)
    fresh = _write(tmp_path / "b.txt", "y@example.com", "z@example.com", "not an address")
    trial = run_cli(
        "list", "import", "l", str(fresh), "--replace", "--dry-run", "--json", workspace=ws
    )
    assert trial.returncode == 0, trial.stderr
    data = json.loads(trial.stdout)
    assert (data["added"], data["removed"], data["rejected"], data["dry_run"]) == (1, 1, 1, True)
    suppressed = run_cli("list", "suppress", "x@example.com", "--dry-run", workspace=ws)
    assert suppressed.returncode == 0, suppressed.stderr
    assert "would suppress 1 new" in suppressed.stdout
    out = tmp_path / "out.txt"
    exported = run_cli("list", "export", "l", "-o", str(out), "--dry-run", workspace=ws)
    assert exported.returncode == 0, exported.stderr
    assert "would write 2 addresses" in exported.stderr and not out.exists()
    removed = run_cli("list", "rm", "l", "--dry-run", "--json", workspace=ws)
    assert json.loads(removed.stdout)["entries"] == 2
    assert _snapshot(store) == before
    assert not list((ws / "rejects").iterdir())
    store.close()


def test_cli_rename_and_rm(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace.root
    source = _write(tmp_path / "a.txt", "x@example.com")
    assert run_cli("list", "import", "old", str(source), workspace=ws).returncode == 0
    renamed = run_cli("list", "rename", "old", "new", workspace=ws)
    assert renamed.returncode == 0, renamed.stderr
    _one_line_error(run_cli("list", "rm", "old", workspace=ws), "no list named 'old'", code=1)
    removed = run_cli("list", "rm", "new", workspace=ws)
    assert removed.returncode == 0, removed.stderr
    assert "removed list new: 1 entries" in removed.stdout
    listed = run_cli("list", "ls", "--json", workspace=ws)
    assert json.loads(listed.stdout) == []


def test_cli_list_tables_fold_long_names_instead_of_cutting(
    workspace: Workspace, tmp_path: Path
) -> None:
    name = "newsletter-subscribers-from-the-spring-2026-campaign"
    source = _write(tmp_path / "a-file-name-long-enough-to-need-folding.txt", "x@example.com")
    assert run_cli("list", "import", name, str(source), workspace=workspace.root).returncode == 0
    for args in (["list", "ls"], ["list", "show", name]):
        result = run_cli(*args, workspace=workspace.root, env={"COLUMNS": "40"})
        assert result.returncode == 0, result.stderr
        assert "…" not in result.stdout, result.stdout
        cells = "".join(
            line.split("│")[1 if args[1] == "ls" else 2].strip()
            for line in result.stdout.splitlines()
            if line.startswith("│")
        )
        assert (name if args[1] == "ls" else source.name) in cells, result.stdout
