"""docs/deployment.md's procedures, run as written: the blocks are read from
the document, so an edit that breaks one fails here. Only the paths of the
production host (/srv/scrubber, /exports, ...) and the ports are swapped for
a temporary directory and free ports, and each swap must find its text."""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from tests.support import ROOT, free_port, run_cli

DOC = ROOT / "docs" / "deployment.md"
SCRUBBER = Path(sys.executable).parent / "scrubber"
PUBLIC = ("--response-domain", "dni.shop.example", "--base-url", "https://dni.shop.example")


def section(title: str) -> str:
    """The text of the ``## N. title`` section."""
    found = re.search(
        rf"^## \d+\. {re.escape(title)}\n(.*?)(?=^## |\Z)", DOC.read_text(), re.M | re.S
    )
    assert found, f"no section {title!r} in {DOC}"
    return found.group(1)


def blocks(title: str) -> list[str]:
    """The indented code blocks of a section, dedented."""
    raw = re.findall(r"(?:^(?: {4}.*|)\n)+", section(title), re.M)
    return [textwrap.dedent(b).strip("\n") + "\n" for b in raw if b.strip()]


def replace_all(text: str, pairs: list[tuple[str, str]]) -> str:
    """``text`` with production paths and ports swapped; each must still occur."""
    for old, new in pairs:
        assert old in text, f"{old!r} is no longer in the documented block:\n{text}"
        text = text.replace(old, new)
    return text


def run_sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``script`` under sh as cron runs it: no terminal, no workspace, scrubber on PATH."""
    env = {**os.environ, "PATH": f"{SCRUBBER.parent}:{os.environ['PATH']}"}
    env.pop("SCRUBBER_WORKSPACE", None)
    return subprocess.run(
        ["sh", "-c", script],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _workspace(root: Path) -> Path:
    created = run_cli("init", str(root), *PUBLIC)
    assert created.returncode == 0, created.stderr
    return root


def _export(path: Path, count: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f'"Customer {n}","c{n}@example.com"\r\n' for n in range(count))
    path.write_bytes(gzip.compress(f'"Name","Email Address"\r\n{rows}'.encode()))
    return path


def _batches(ws: Path) -> list[dict[str, object]]:
    listed = run_cli("batch", "ls", "--json", workspace=ws)
    assert listed.returncode == 0, listed.stderr
    batches: list[dict[str, object]] = json.loads(listed.stdout)
    return batches


def test_the_cron_recipe_runs_as_written(tmp_path: Path) -> None:
    (recipe,) = [b for b in blocks("Schedule") if b.startswith("#!/bin/sh")]
    ws = _workspace(tmp_path / "srv")
    export = _export(tmp_path / "exports" / "customers.csv.gz", 12)
    (tmp_path / "reports").mkdir()
    paths = [
        ("/srv/scrubber", str(ws)),
        ("/exports/customers.csv.gz", str(export)),
        ("/srv/reports/summary.csv", str(tmp_path / "reports" / "summary.csv")),
    ]
    result = run_sh(replace_all(recipe, paths), tmp_path)
    assert result.returncode == 0, result.stderr
    (batch,) = _batches(ws)
    assert batch["parts_posted"] == batch["parts_total"]
    assert list((ws / "spool").iterdir()), "batch post latest wrote no article"
    summary = (tmp_path / "reports" / "summary.csv").read_text()
    assert str(batch["id"]) in summary

    # set -eu: a failed import stops the run before a batch is made or posted.
    export.unlink()
    failed = run_sh(replace_all(recipe, paths), tmp_path)
    assert failed.returncode != 0
    assert "customers.csv.gz" in failed.stderr
    assert len(_batches(ws)) == 1


def test_backup_and_restore_run_as_written(tmp_path: Path) -> None:
    backup, restore = blocks("Backups")
    ws = _workspace(tmp_path / "srv")
    export = _export(tmp_path / "customers.csv.gz", 5)
    assert run_cli("list", "import", "customers", str(export), workspace=ws).returncode == 0
    assert run_cli("list", "suppress", "c1@example.com", workspace=ws).returncode == 0
    (tmp_path / "backups").mkdir()
    made = run_sh(
        replace_all(backup, [("/srv/scrubber", str(ws)), ("/backups", str(tmp_path / "backups"))]),
        tmp_path,
    )
    assert made.returncode == 0, made.stderr
    archive = tmp_path / "backups" / "scrubber.tar.gz"
    assert archive.stat().st_mode & 0o777 == 0o600
    assert not (ws / "backup.db").exists()

    target = tmp_path / "new-host" / "scrubber"
    restored = run_sh(
        replace_all(
            restore, [("/srv/scrubber", str(target)), ("/backups", str(tmp_path / "backups"))]
        ),
        tmp_path,
    )
    assert restored.returncode == 0, restored.stderr
    assert "customers" in restored.stdout
    key = Path("keys") / "operator.key"
    assert (target / key).read_bytes() == (ws / key).read_bytes()
    exported = run_cli("list", "export", "customers", workspace=target)
    assert exported.returncode == 0, exported.stderr
    # The suppression came back with the lists: c1 stays out.
    assert sorted(exported.stdout.split()) == [f"c{n}@example.com" for n in (0, 2, 3, 4)]


def test_the_key_rotation_commands_run_as_written(tmp_path: Path) -> None:
    steps = section("Key rotation")
    commands = re.findall(r"`(scrubber key [a-z]+)`", steps)
    assert commands == ["scrubber key rotate", "scrubber key show"]
    ws = _workspace(tmp_path / "srv")
    export = _export(tmp_path / "customers.csv.gz", 3)
    assert run_cli("list", "import", "customers", str(export), workspace=ws).returncode == 0
    assert run_cli("batch", "create", "customers", workspace=ws).returncode == 0
    before = (ws / "keys" / "operator.pub").read_text().strip()
    outputs = []
    for command in commands:
        result = run_sh(command, ws)  # in the workspace, as an operator types it
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    after = (ws / "keys" / "operator.pub").read_text().strip()
    assert after != before
    retired = list((ws / "keys" / "retired").iterdir())
    assert retired and all(p.stat().st_mode & 0o777 == 0o600 for p in retired)
    shown = outputs[1]
    assert f"current  {after}" in shown and f"retired  {before}" in shown
    # docs/report.md: a report on a batch made before the rotation is signed
    # by the new key, and its batch section still names the articles' key.
    report = run_cli("report", "latest", "--format", "json", workspace=ws)
    assert report.returncode == 0, report.stderr
    document = json.loads(report.stdout)
    assert document["signature"]["key"] == after
    assert document["batch"]["key_public"] == before
    assert "reports on batches made under the old key are signed with the new" in " ".join(
        (ROOT / "docs" / "report.md").read_text().split()
    )


def test_the_systemd_exec_start_line_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    (unit,) = [b for b in blocks("The listener under systemd behind a TLS proxy") if "[Unit]" in b]
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    ws = _workspace(tmp_path / "srv")
    http, smtp = free_port(), free_port()
    command = replace_all(
        settings["ExecStart"],
        [
            ("/srv/scrubber/.venv/bin/scrubber", str(SCRUBBER)),
            ("127.0.0.1:2525", f"127.0.0.1:{smtp}"),
            ("127.0.0.1:8025", f"127.0.0.1:{http}"),
        ],
    )
    variable, value = settings["Environment"].split("=", 1)
    env = {**os.environ, variable: replace_all(value, [("/srv/scrubber", str(ws))])}
    assert settings["KillSignal"] == "SIGTERM"
    proc = subprocess.Popen(
        shlex.split(command),
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _healthy(f"http://127.0.0.1:{http}/healthz", proc), "listener never came up"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=float(settings["TimeoutStopSec"]))
    finally:
        if proc.poll() is None:
            proc.kill()
        _, log = proc.communicate(timeout=30)
    assert code == 0, log


def _healthy(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False
