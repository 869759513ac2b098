"""scrubber report commands (filled in by the report work)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
