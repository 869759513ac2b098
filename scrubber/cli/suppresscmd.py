"""scrubber suppress import|export|lift|lifts: the suppression ledger."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import click

from scrubber import esp, ledger, scheme
from scrubber.cli.context import AppContext, pass_app, print_json, print_table
from scrubber.errors import UsageError


@click.group("suppress")
def suppress_group() -> None:
    """The suppression ledger: every opt-out, with channel, reason and evidence."""


@suppress_group.command("lift")
@click.argument("address")
@click.option("--reason", required=True, help="Why the suppression was a mistake (recorded).")
@pass_app
def lift(app: AppContext, address: str, reason: str) -> None:
    """Lift the manual suppression of ADDRESS, entered by mistake.

    Only the manual channel can be lifted; an opt-out by its owner or the
    registry is permanent. The lift is recorded ('scrubber suppress lifts').

    \\b
    Example:
      scrubber suppress lift jane@example.com --reason "typo for jane@example.org"
    """
    row = ledger.lift(app.store, address, reason)
    app.out.print(f"lifted the manual suppression of {scheme.mask(row.canonical)}")


@suppress_group.command("lifts")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def lifts(app: AppContext, as_json: bool) -> None:
    """List every lifted suppression: when, why, and what it was (masked).

    \\b
    Example:
      scrubber suppress lifts
    """
    found_lifts = ledger.lifts(app.store)
    if as_json:
        print_json(
            [
                {
                    "lifted_at": found.lifted_at,
                    "address": scheme.mask(canonical),
                    "reason": found.lift_reason,
                    "channel": found.channel,
                    "suppressed_at": found.suppressed_at,
                    "origin": found.origin,
                }
                for canonical, found in found_lifts
            ]
        )
        return
    rows = (
        (
            f"{found.lifted_at:%Y-%m-%d %H:%M}",
            scheme.mask(canonical),
            found.lift_reason,
            f"{found.suppressed_at:%Y-%m-%d %H:%M}",
            found.origin or "-",
        )
        for canonical, found in found_lifts
    )
    print_table(app, ("lifted", "address", "reason", "was suppressed", "origin"), rows)


@suppress_group.command("import")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Choice(list(esp.FORMATS)),
    help="The service whose export FILES are (csv: address[,reason,origin,received_at]).",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def import_(app: AppContext, source: str, files: tuple[Path, ...], as_json: bool) -> None:
    """Import the suppressions of FILES, exported from another system.

    Each service's reason (bounce, complaint, unsubscribe) and origin are kept;
    the channel is import:SOURCE. CSV or JSON, plain or .gz. Re-importing is a
    no-op that keeps the earliest time. Rows with a bad address, reason or
    time are listed as FILE:LINE: REASON and not stored.

    \b
    Example:
      scrubber suppress import --from postmark suppressions.csv
      scrubber suppress import --from mailgun bounces.csv unsubscribes.csv
    """
    summary = esp.import_files(app.store, source, list(files))
    if as_json:
        print_json(asdict(summary))
        return
    app.out.print(
        f"{summary.rows:,} rows: {summary.added:,} suppressed, {summary.already:,} already "
        f"suppressed ({summary.earlier:,} moved to an earlier time), {summary.skipped:,} "
        f"not suppressions, {len(summary.rejects):,} rejected"
    )
    for reject in summary.rejects:
        app.err.print(f"rejected {reject.path}:{reject.line}: {reject.reason}", highlight=False)


@suppress_group.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(esp.EXPORT_FORMATS), default="csv", show_default=True
)
@click.option("--since", help="Only suppressions committed at or after this ISO date/time (UTC).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (mode 0600) instead of stdout.",
)
@pass_app
def export(app: AppContext, fmt: str, since: str | None, output: Path | None) -> None:
    """Write the ledger for another system: a CSV per service or digests.

    md5/sha256/sha512: the canonical address lower case and trimmed, then the
    lower-case hex digest, one a line, for partners taking OPTIZMO-style files.
    Unsalted digests of addresses are reversible by dictionary: send them only
    to whom you would send the addresses.

    \b
    Example:
      scrubber suppress export --format postmark -o postmark.csv
      scrubber suppress export --format md5 --since 2025-01-01 > optout.md5
    """
    lines = esp.export_lines(app.store, fmt, since=_since(since))
    if output is None:
        for line in lines:
            sys.stdout.write(line + "\n")
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file existed with another mode
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r} is not an ISO date (YYYY-MM-DD[THH:MM])") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


COMMANDS: list[click.Command] = [suppress_group]
