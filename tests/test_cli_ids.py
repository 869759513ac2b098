"""Batch ids are easy to give: latest, unique prefixes; -w anywhere; tables never cut ids."""

from __future__ import annotations

import json
from pathlib import Path

from scrubber.workspace import Workspace
from tests.support import run_cli


def _batch(workspace: Workspace, tmp_path: Path) -> str:
    source = tmp_path / "l.txt"
    source.write_text("".join(f"p{i}@example.com\n" for i in range(5)))
    assert run_cli("list", "import", "l", str(source), workspace=workspace.root).returncode == 0
    created = run_cli("batch", "create", "l", "--json", workspace=workspace.root)
    assert created.returncode == 0, created.stderr
    batch_id: str = json.loads(created.stdout)["id"]
    return batch_id


def test_latest_prefix_and_workspace_after_the_subcommand(
    workspace: Workspace, tmp_path: Path
) -> None:
    batch_id = _batch(workspace, tmp_path)
    for given in ("latest", batch_id[:12], batch_id):
        # -w after the subcommand, as an operator types it.
        shown = run_cli("batch", "show", given, "--json", "-w", str(workspace.root))
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["id"] == batch_id
    missing = run_cli("batch", "show", "nope", workspace=workspace.root)
    assert missing.returncode != 0
    assert missing.stderr.startswith("error: ") and missing.stderr.count("\n") == 1


def test_narrow_tables_fold_ids_instead_of_cutting_them(
    workspace: Workspace, tmp_path: Path
) -> None:
    batch_id = _batch(workspace, tmp_path)
    for args in (["batch", "ls"], ["batch", "show", "latest"]):
        result = run_cli(*args, workspace=workspace.root, env={"COLUMNS": "60"})
        assert result.returncode == 0, result.stderr
        assert "…" not in result.stdout, result.stdout
        rows = [line.split("│") for line in result.stdout.splitlines() if line.startswith("│")]
        column = 1 if args[1] == "ls" else 2  # the batch id; the parts' Message-IDs
        cells = "".join(row[column].strip() for row in rows if len(row) > column)
        assert batch_id in cells, cells


def test_no_batches_latest_is_one_line(workspace: Workspace) -> None:
    result = run_cli("batch", "show", "latest", workspace=workspace.root)
    assert result.returncode == 1
    assert result.stderr == "error: no batches yet; 'scrubber batch create LIST' makes one\n"


def test_list_show_json(workspace: Workspace, tmp_path: Path) -> None:
    _batch(workspace, tmp_path)
    result = run_cli("list", "show", "l", "--json", workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["name"], shown["addresses"], shown["suppressed"]) == ("l", 5, 0)
    assert [run["added"] for run in shown["imports"]] == [5]


def test_batch_post_json(workspace: Workspace, tmp_path: Path) -> None:
    batch_id = _batch(workspace, tmp_path)
    posted = run_cli("batch", "post", "latest", "--json", workspace=workspace.root)
    assert posted.returncode == 0, posted.stderr
    summary = json.loads(posted.stdout)
    assert (summary["batch"], summary["posted"]) == (batch_id, summary["parts_total"])
    assert all(part["result"] == "posted" for part in summary["parts"])
    again = json.loads(
        run_cli("batch", "post", batch_id[:10], "--json", workspace=workspace.root).stdout
    )
    assert (again["posted"], again["already"]) == (0, summary["parts_total"])
