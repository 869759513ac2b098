"""`scrubber demo` runs the whole loop on embedded defaults and leaves a usable workspace."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path

from tests.support import run_cli


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    result = run_cli("demo", "--keep", str(keep), timeout=300)
    assert result.returncode == 0, result.stderr
    found = re.search(
        r"(\d+) addresses suppressed after opt-out pings for batch (\S+)", result.stdout
    )
    assert found, result.stdout
    suppressed, batch_id = int(found[1]), found[2]
    assert suppressed == 25
    # closing(): sqlite3's own context manager ends the transaction, not the connection.
    with closing(sqlite3.connect(keep / "scrubber.db")) as db:
        rows = db.execute("SELECT channel, batch_id FROM suppressions").fetchall()
        accepted = db.execute("SELECT count(*) FROM pings WHERE outcome = 'accepted'").fetchone()
        canonical = [row[0] for row in db.execute("SELECT canonical FROM addresses")]
    assert rows == [("dni-ping", batch_id)] * 25
    assert accepted == (25,)
    exported = run_cli("list", "export", "customers", workspace=keep)
    assert exported.returncode == 0
    assert len(exported.stdout.splitlines()) == 10_000 - 25
    html = keep / "reports" / f"{batch_id}.html"
    assert (keep / "reports" / f"{batch_id}.txt").is_file()
    verified = run_cli("report", "verify", str(html), workspace=keep)
    assert verified.returncode == 0, verified.stderr
    # No full address is printed, in any spelling.
    printed = (result.stdout + result.stderr).lower()
    assert not [address for address in canonical if address in printed]


def test_demo_refuses_a_non_empty_keep_directory(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    result = run_cli("demo", "--keep", str(tmp_path / "busy"))
    assert result.returncode != 0
    assert result.stderr.strip().startswith("error: ")
    assert "not empty" in result.stderr
