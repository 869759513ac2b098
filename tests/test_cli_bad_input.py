"""The CLI as a user drives it: bad input gets one line, a non-zero exit, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scrubber.workspace import Workspace
from tests.support import run_cli

# Each case: (argv with {ws} / {tmp} placeholders, a fragment the message must hold).
CASES: list[tuple[list[str], str]] = [
    (["--workspace", "{tmp}/nowhere", "list", "ls"], "no workspace"),
    (["init", "{ws}"], "already a workspace"),
    (["--workspace", "{ws}", "list", "import", "news", "{tmp}/missing.txt"], "missing.txt"),
    (["--workspace", "{ws}", "list", "import", "news", "{tmp}/binary.bin"], "not UTF-8"),
    (["--workspace", "{ws}", "list", "import", "news", "{tmp}/nocol.csv"], "column"),
    (["--workspace", "{ws}", "list", "import", "news", "{tmp}/ok.csv", "--column", "zzz"], "zzz"),
    (["--workspace", "{ws}", "list", "show", "nope"], "no list named"),
    (["--workspace", "{ws}", "list", "export", "nope"], "no list named"),
    (["--workspace", "{ws}", "list", "hash", "nope"], "no list named"),
    (["--workspace", "{ws}", "list", "suppress"], "give addresses"),
    (["--workspace", "{ws}", "list", "suppress", "not-an-address"], "no valid address"),
    (["--workspace", "{ws}", "list", "export", "news", "-o", "{tmp}/no/such/dir/x"], "cannot"),
    (["scheme", "hash", "--salt", "xyz"], "salt"),
    (["scheme", "hash", "--salt", "00" * 16, "--tag-length", "99"], "tag-length"),
    (["--workspace", "{ws}", "batch", "create", "nolist"], "no list named"),
    (["--workspace", "{ws}", "batch", "create", "news", "--tag-length", "3"], "--tag-length"),
    (["--workspace", "{ws}", "batch", "show", "nope"], "no batch"),
    (["--workspace", "{ws}", "batch", "post", "nope"], "no batch"),
    (["--workspace", "{ws}", "batch", "post", "{batch}", "--server", "ftp://x"], "nntp://"),
    (["--workspace", "{ws}", "report", "nope"], "no batch"),
    (["--workspace", "{ws}", "report", "verify", "{tmp}/missing.html"], "missing.html"),
    (["--workspace", "{ws}", "report", "--since", "x"], "--since"),
    (["--workspace", "{ws}", "listen", "--http", "notaport"], "HOST:PORT"),
    (["--workspace", "{ws}", "listen", "--smtp-proxy-protocol"], "needs --trusted-proxy"),
    (["responder", "--db", "{tmp}/r.db", "scan"], "--server"),
    (["responder", "--db", "{tmp}/r.db", "scan", "--server", "bad://x"], "nntp://"),
    (["responder", "--db", "{tmp}/r.db", "add", "not-an-address"], "no-at-sign"),
    (["--workspace", "{ws}", "frobnicate"], "No such command"),
    (["--workspace", "{ws}", "list", "import"], "Missing argument"),
    (["--workspace", "{ws}", "list", "ls", "--bogus"], "No such option"),
]


@pytest.fixture
def inputs(tmp_path: Path, workspace: Workspace) -> dict[str, str]:
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)) * 64)
    (tmp_path / "nocol.csv").write_text("name,city\nann,paris\nbob,rome\n")
    (tmp_path / "ok.csv").write_text("name,email\nann,ann@example.com\n")
    (tmp_path / "list.txt").write_text("ann@example.com\n")
    result = run_cli("list", "import", "news", str(tmp_path / "list.txt"), workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    created = run_cli("batch", "create", "news", "--json", workspace=workspace.root)
    assert created.returncode == 0, created.stderr
    batch = json.loads(created.stdout)["id"]
    return {"ws": str(workspace.root), "tmp": str(tmp_path), "batch": batch}


@pytest.mark.parametrize(("argv", "fragment"), CASES, ids=[" ".join(c[0][-3:]) for c in CASES])
def test_bad_input_is_one_line(inputs: dict[str, str], argv: list[str], fragment: str) -> None:
    args = [a.format(**inputs) for a in argv]
    result = run_cli(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]
