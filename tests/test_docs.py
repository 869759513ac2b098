"""Documentation that is generated from code must match the code."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_cli_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", "--diff", "docs/cli.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (
        "docs/cli.md is out of date; run 'make docs'\n" + result.stdout + result.stderr
    )
