"""Documentation that is generated from code must match the code."""

from __future__ import annotations

import subprocess
import sys

import click

from tests.support import ROOT


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


def _leaf_commands(command: click.Command, path: list[str]) -> list[tuple[str, click.Command]]:
    if not isinstance(command, click.Group):
        return [(" ".join(path), command)]
    ctx = click.Context(command)
    found: list[tuple[str, click.Command]] = []
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{name} is listed but cannot be loaded"
        found += _leaf_commands(sub, [*path, name])
    return found


def test_every_command_has_help_with_an_example() -> None:
    from scrubber.cli import cli

    missing = [
        path
        for path, command in _leaf_commands(cli, ["scrubber"])
        if not command.help or "Example" not in command.help
    ]
    assert missing == []
