"""scrubber suppress lift|log: the suppression ledger."""

from __future__ import annotations

import click
from rich.table import Table

from scrubber import ledger, scheme
from scrubber.cli.context import AppContext, pass_app


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
@pass_app
def lifts(app: AppContext) -> None:
    """List every lifted suppression: when, why, and what it was (masked).

    \\b
    Example:
      scrubber suppress lifts
    """
    table = Table("lifted", "address", "reason", "was suppressed", "origin")
    for canonical, found in ledger.lifts(app.store):
        table.add_row(
            f"{found.lifted_at:%Y-%m-%d %H:%M}",
            scheme.mask(canonical),
            found.lift_reason,
            f"{found.suppressed_at:%Y-%m-%d %H:%M}",
            found.origin or "-",
        )
    app.out.print(table)


COMMANDS: list[click.Command] = [suppress_group]
