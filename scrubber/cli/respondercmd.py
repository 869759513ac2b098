"""scrubber responder commands (filled in by the responder work)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
