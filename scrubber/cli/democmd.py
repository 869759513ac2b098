"""scrubber demo."""

from __future__ import annotations

import shutil
import tempfile
import time
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

    Imports a sample list, creates a batch and posts it to a spool directory,
    starts the listener on free local ports, lets the reference responder
    find sample registrants in the batch and ping, then writes the signed
    text and HTML compliance reports.

    \b
    Example:
      scrubber demo --keep /tmp/scrubber-demo
    """
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise UsageError(f"{keep} is not empty; give --keep a new directory")

    def say(step: DemoStep) -> None:
        app.out.print(f"[bold green]{step.title:>10}[/]  {step.detail}")

    started = time.monotonic()
    root = keep or Path(tempfile.mkdtemp(prefix="scrubber-demo-"))
    # Without --keep the workspace goes, but the reports stay for a look.
    reports = None if keep else Path(tempfile.mkdtemp(prefix="scrubber-demo-reports-"))
    try:
        result = run_demo(root, sample, say, reports_dir=reports)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    app.out.print(
        f"\n[bold]done in {time.monotonic() - started:.0f} s[/]: {result.suppressed} addresses "
        f"suppressed after opt-out pings for batch {result.batch_id}"
    )
    app.out.print(f"  text report  {result.text_report}")
    app.out.print(f"  HTML report  {result.html_report}")
    if keep is not None:
        app.out.print(f"  workspace    {keep} (try: scrubber -w {keep} status)")


COMMANDS = [demo]
