"""scrubber batch commands (filled in by the batch work)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
