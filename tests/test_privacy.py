"""Privacy at rest: every file holding addresses, hashes, keys or credentials is owner-only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from scrubber import lists
from scrubber.demo import SAMPLE, run_demo
from scrubber.private import AtomicFile, redact_url
from scrubber.responder.store import ResponderStore
from scrubber.workspace import Workspace, open_store
from tests.support import run_cli


def _public(path: Path) -> bool:
    """Shared on purpose: the public key, articles as posted to the world (a news
    feeder must read the spool), reports for auditors (masked addresses only)."""
    in_reports = path.name == "reports" or path.parent.name == "reports"
    return path.suffix in (".pub", ".rnews") or in_reports


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual 022: the library must not rely on the CLI's umask for privacy."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _wide(root: Path) -> list[str]:
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077 and not _public(path):
            found.append(f"{path.relative_to(root.parent)} {mode:04o}")
    return found


@pytest.mark.slow
def test_a_full_run_leaves_no_file_others_can_read(tmp_path: Path, loose_umask: None) -> None:
    root = tmp_path / "demo"
    result = run_demo(root, SAMPLE / "customers.csv.gz", lambda step: None)
    assert result.suppressed == 25
    # The demo's import had no rejects; one more import, with rejects, and an export.
    with open_store(result.workspace) as store:
        bad = tmp_path / "bad.txt"
        bad.write_text("not an address\nok@example.com\n")
        summary = lists.import_files(
            store, "extra", [bad], rejects_path=root / "rejects" / "extra.csv"
        )
        assert summary.rejects_path is not None
        lists.write_export(lists.iter_export(store, "extra"), root / "extra.txt")
        # While the store is open: SQLite removes -wal and -shm at the last close.
        assert {"scrubber.db-wal", "scrubber.db-shm"} <= {p.name for p in root.iterdir()}
        assert _wide(root) == []
    names = {p.name for p in root.rglob("*")}
    assert {"scrubber.db", "scrubber.toml", "extra.csv", "extra.txt", "listener.log"} <= names
    assert {"responder.db", "operator.key"} <= names
    assert _wide(root) == []


def test_responder_database_is_private(tmp_path: Path, loose_umask: None) -> None:
    store = ResponderStore.open(tmp_path / "r" / "responder.db")
    store.close()
    assert stat.S_IMODE((tmp_path / "r" / "responder.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "r").stat().st_mode) == 0o700


def test_an_old_world_readable_database_is_tightened(workspace: Workspace) -> None:
    db = workspace.root / "scrubber.db"
    db.chmod(0o644)
    open_store(workspace).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_export_is_private_unless_widened(workspace: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("a@example.com\n")
    assert run_cli("list", "import", "l", str(source), workspace=workspace.root).returncode == 0
    out = tmp_path / "out.txt"
    assert run_cli("list", "export", "l", "-o", str(out), workspace=workspace.root).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    wide = run_cli("list", "export", "l", "-o", str(out), "--mode", "644", workspace=workspace.root)
    assert wide.returncode == 0, wide.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    bad = run_cli("list", "export", "l", "-o", str(out), "--mode", "9x", workspace=workspace.root)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: --mode must be octal")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o666])
def test_a_key_others_can_read_is_refused(workspace: Workspace, mode: int) -> None:
    key = workspace.root / "keys" / "operator.key"
    key.chmod(mode)
    result = run_cli("batch", "create", "nothing", workspace=workspace.root)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"(mode {mode:04o}); run 'chmod 600 {key}'" in result.stderr


def test_a_password_in_the_server_url_is_never_shown(tmp_path: Path) -> None:
    result = run_cli(
        "init",
        str(tmp_path / "ws"),
        "--server",
        "nntps://poster:SECRET@news.example.net",
        "--response-domain",
        "dni.shop.example",
        "--base-url",
        "https://dni.shop.example",
    )
    assert result.returncode == 0, result.stderr
    assert "SECRET" not in result.stdout + result.stderr
    assert "nntps://poster:***@news.example.net" in result.stdout
    config = tmp_path / "ws" / "scrubber.toml"
    assert "SECRET" in config.read_text()  # batch post needs it ...
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # ... and no one else may read it
    assert stat.S_IMODE((tmp_path / "ws").stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nntp://u:p@h:119", "nntp://u:***@h:119"),
        ("nntp://h", "nntp://h"),
        ("postgresql+psycopg://s:pw@db/x", "postgresql+psycopg://s:***@db/x"),
        ("spool:spool", "spool:spool"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_rejects_under_an_unusable_directory_is_one_line(
    workspace: Workspace, tmp_path: Path
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("bad\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for rejects in (blocker / "rejects.csv", Path("/proc/no-such/rejects.csv")):
        result = run_cli(
            "list", "import", "l", str(source), "--rejects", str(rejects), workspace=workspace.root
        )
        assert result.returncode == 2
        assert result.stderr.startswith(f"error: cannot write the rejects file {rejects}")
        assert result.stderr.count("\n") == 1, result.stderr
    assert run_cli("list", "ls", "--json", workspace=workspace.root).stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--m", "99999999999"], "Invalid value for '--m'"),
        (["--m", "4294967295", "--t", "1"], "cannot hash with t=1 m=4294967295 p=1"),
        (["--p", "99999999"], "Invalid value for '--p'"),
    ],
)
def test_scheme_hash_out_of_range_costs_are_one_line(args: list[str], fragment: str) -> None:
    salt = "000102030405060708090a0b0c0d0e0f"
    result = run_cli("scheme", "hash", "--salt", salt, *args, stdin="a@example.com\n")
    assert result.returncode == 2
    assert fragment in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_an_atomic_file_appears_whole_with_its_mode_or_not_at_all(
    tmp_path: Path, loose_umask: None
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), AtomicFile.text(target) as handle:
        handle.write("half")
        raise RuntimeError
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["out.txt"]
    with AtomicFile.binary(target, mode=0o664) as raw:
        raw.write(b"new\n")
        # Not there until the end; the temporary file is a dot-file beside it.
        assert target.read_text() == "old\n"
        (temp,) = [name for name in os.listdir(tmp_path) if name != "out.txt"]
        assert temp.startswith(".out.txt.")
        assert stat.S_IMODE((tmp_path / temp).stat().st_mode) == 0o664
    assert target.read_bytes() == b"new\n" and os.listdir(tmp_path) == ["out.txt"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o664  # the umask (022) did not narrow it
    with AtomicFile.text(target) as handle:
        handle.write("private\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
