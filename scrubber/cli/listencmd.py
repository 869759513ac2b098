"""scrubber listen commands (filled in by the listen work)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
