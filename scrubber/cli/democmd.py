"""scrubber demo."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from scrubber.cli.context import AppContext, pass_app
from scrubber.demo import SAMPLE, DemoStep, run_demo
from scrubber.errors import UsageError


@click.command()
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build the demo workspace here and leave it for a look.",
)
@click.option(
    "--sample",
    type=click.Path(dir_okay=False, path_type=Path),
    default=SAMPLE / "customers.csv.gz",
    show_default="sample_lists/customers.csv.gz",
    help="List to import.",
)
@pass_app
def demo(app: AppContext, keep: Path | None, sample: Path) -> None:
    """Run the whole pipeline on embedded defaults (SQLite, spool directory).

    \b
    Example:
      scrubber demo --keep /tmp/scrubber-demo
    """
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise UsageError(f"{keep} is not empty; give --keep a new directory")

    def say(step: DemoStep) -> None:
        app.out.print(f"[bold green]{step.title:>10}[/]  {step.detail}")

    root = keep or Path(tempfile.mkdtemp(prefix="scrubber-demo-"))
    try:
        run_demo(root, sample, say)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    if keep is not None:
        app.out.print(f"workspace kept in {keep}")


COMMANDS = [demo]
