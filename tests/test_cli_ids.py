"""Batch ids are easy to give: latest, unique prefixes; -w anywhere; tables never cut ids."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
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
    (server,) = summary["servers"]
    assert all(part["result"] == "posted" for part in server["parts"])
    again = json.loads(
        run_cli("batch", "post", batch_id[:10], "--json", workspace=workspace.root).stdout
    )
    assert (again["posted"], again["already"]) == (0, summary["parts_total"])


def test_report_takes_latest_and_a_prefix(workspace: Workspace, tmp_path: Path) -> None:
    batch_id = _batch(workspace, tmp_path)
    for given in ("latest", batch_id[:12]):
        result = run_cli("report", given, "--format", "json", workspace=workspace.root)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["batch"]["id"] == batch_id


def test_responder_report_folds_its_headers(tmp_path: Path) -> None:
    result = run_cli("responder", "--db", str(tmp_path / "r.db"), "report", env={"COLUMNS": "50"})
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout, result.stdout
    header = [line for line in result.stdout.splitlines() if line.startswith("┃")]
    columns = [
        "".join(cells) for cells in zip(*(line.split("┃")[1:-1] for line in header), strict=True)
    ]
    assert [c.replace(" ", "") for c in columns][:3] == ["key", "batches", "refused"]


def test_batch_post_says_where_it_connects_on_a_terminal(
    workspace: Workspace, tmp_path: Path
) -> None:
    """A closed port is retried for seconds: the operator sees what it waits for."""
    batch_id = _batch(workspace, tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    argv = ["-w", str(workspace.root), "batch", "post", batch_id]
    code, text = _stderr_on_a_terminal(
        [*argv, "--server", f"nntp://127.0.0.1:{port}", "--retries", "1"]
    )
    assert code == 1
    waiting = text.index(f"connecting to nntp://127.0.0.1:{port} ...")
    assert waiting < text.index("error: cannot reach"), text


def test_status_says_which_listener_it_checks_on_a_terminal(workspace: Workspace) -> None:
    settings = workspace.settings
    code, text = _stderr_on_a_terminal(["-w", str(workspace.root), "status"])
    assert code in (5, 6)  # down, or another workspace's listener on that port
    assert f"checking the listener at http://{settings.http_host}:{settings.http_port} ..." in text


def _stderr_on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run scrubber with stderr on a pseudo-terminal; its exit code and what it showed."""
    primary, secondary = os.openpty()
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("SCRUBBER_WORKSPACE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrubber", *argv],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    seen = b""
    try:
        while True:
            if select.select([primary], [], [], 0.5)[0]:
                try:
                    data = os.read(primary, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                seen += data
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=60)
    finally:
        os.close(primary)
    return code, seen.decode(errors="replace")


# Commands whose output is not data to parse: a file or stream in a format of
# its own (export, stamp, report --format), a server, or a one-line confirmation.
NO_JSON = {
    "list export": "writes addresses one a line",
    "list rename": "a confirmation",
    "suppress export": "--format csv|json|...",
    "suppress lift": "a confirmation",
    "unsubscribe header": "mail headers, to paste",
    "unsubscribe stamp": "a mail filter: the message",
    "listen": "a server",
    "responder add": "a confirmation",
    "responder remove": "a confirmation",
    "report show": "--format json",
    "report verify": "a verdict and exit code",
    "report ledger": "--format json",
    "key rotate": "a confirmation",
    "demo": "a walkthrough",
}


def test_every_command_that_prints_data_has_json() -> None:
    import click

    from scrubber.cli import cli

    ctx = click.Context(cli)
    missing = []

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])
            return
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        name = " ".join(path)
        if "--json" not in options and name not in NO_JSON:
            missing.append(name)

    walk(cli, [])
    assert missing == []


def test_the_new_json_outputs(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace.root
    _batch(workspace, tmp_path)
    hashed = run_cli("list", "hash", "l", "--json", workspace=ws)
    assert hashed.returncode == 0, hashed.stderr
    assert json.loads(hashed.stdout)["needed"] == 5
    shown = json.loads(run_cli("key", "show", "--json", workspace=ws).stdout)
    public = (ws / "keys" / "operator.pub").read_text().strip()
    assert shown == {
        "current": {"key": public, "fingerprint": shown["current"]["fingerprint"]},
        "retired": [],
    }
    assert run_cli("list", "suppress", "p1@example.com", workspace=ws).returncode == 0
    lifted = run_cli("suppress", "lift", "p1@example.com", "--reason", "typo", workspace=ws)
    assert lifted.returncode == 0, lifted.stderr
    (row,) = json.loads(run_cli("suppress", "lifts", "--json", workspace=ws).stdout)
    assert (row["address"], row["reason"], row["channel"]) == ("p***@example.com", "typo", "manual")
    export = tmp_path / "unsubs.csv"
    export.write_text("address,reason\nq@example.com,unsubscribe\nbad,unsubscribe\n")
    imported = run_cli("suppress", "import", "--from", "csv", str(export), "--json", workspace=ws)
    summary = json.loads(imported.stdout)
    assert (summary["added"], len(summary["rejects"])) == (1, 1)
    lines = run_cli("scheme", "canonicalize", "--json", stdin="Jane@Example.com\nbad\n").stdout
    assert [json.loads(x) for x in lines.splitlines()] == [
        {"canonical": "jane@example.com"},
        {"reject": "no-at-sign"},
    ]
