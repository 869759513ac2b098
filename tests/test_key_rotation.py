"""scrubber key rotate: a new key, the old one retired, old reports still verify."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.report_support import Seeded
from tests.support import run_cli


def test_rotate_keeps_old_reports_verifying(seeded: Seeded, tmp_path: Path) -> None:
    root = seeded.workspace.root
    before = tmp_path / "before.json"
    assert run_cli("report", seeded.batch_id, "-o", str(before), workspace=root).returncode == 0
    old_pub = (root / "keys" / "operator.pub").read_text().strip()
    rotated = run_cli("key", "rotate", workspace=root)
    assert rotated.returncode == 0, rotated.stderr
    new_pub = (root / "keys" / "operator.pub").read_text().strip()
    assert new_pub != old_pub
    retired = list((root / "keys" / "retired").iterdir())
    assert sorted(p.suffix for p in retired) == [".key", ".pub"]
    key_file = next(p for p in retired if p.suffix == ".key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    shown = run_cli("key", "show", workspace=root).stdout
    assert f"current  {new_pub}" in shown and f"retired  {old_pub}" in shown
    old = run_cli("report", "verify", str(before), workspace=root)
    assert old.returncode == 0, old.stderr
    assert "signed by the workspace's retired key" in old.stdout
    after = tmp_path / "after.json"
    assert run_cli("report", seeded.batch_id, "-o", str(after), workspace=root).returncode == 0
    new = run_cli("report", "verify", str(after), workspace=root)
    assert new.returncode == 0 and "signed by the workspace key" in new.stdout
    outside = run_cli("report", "verify", str(before), "--key", new_pub)
    assert outside.returncode == 4
