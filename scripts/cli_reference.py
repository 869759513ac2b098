"""Render the CLI reference (docs/cli.md) from the click commands' --help.

Used by cog: `make docs` regenerates docs/cli.md, and tests/test_docs.py
fails when the file is out of date.
"""

from __future__ import annotations

import click
from click.testing import CliRunner

from scrubber.cli import cli


def _walk(command: click.Command, path: list[str]) -> list[list[str]]:
    found = [path]
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                found += _walk(sub, [*path, name])
    return found


def render() -> str:
    """Markdown: one section per command with its --help text."""
    runner = CliRunner()
    parts: list[str] = []
    for path in _walk(cli, []):
        result = runner.invoke(cli, [*path, "--help"], prog_name="scrubber", terminal_width=100)
        title = " ".join(["scrubber", *path])
        level = "#" * min(2 + len(path), 4)
        parts.append(f"{level} `{title}`\n\n```\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)
