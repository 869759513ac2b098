"""scrubber report BATCH | report --all | report verify FILE, and scrubber status."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from scrubber import keys
from scrubber.batch import info as batch_info
from scrubber.cli.context import AppContext, pass_app, print_json
from scrubber.errors import (
    DeadlineAtRisk,
    KeyFileError,
    ListenerDown,
    ListenerWrongKey,
    ReportCheckFailed,
    UsageError,
    WorkspaceError,
)
from scrubber.report import build, formats, sign, status
from scrubber.report import ledger as ledger_report
from scrubber.report.model import BatchReport, Document, SummaryReport, is_summary
from scrubber.report.render_text import render_text
from scrubber.workspace import load_key

DEFAULT = "show"


class _ReportGroup(click.Group):
    """Routes ``report BATCH ...`` and ``report --all ...`` to the ``show`` command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and (args[0] in self.commands or args[0] in ctx.help_option_names):
            return super().parse_args(ctx, args)
        return super().parse_args(ctx, [DEFAULT, *args])


@click.group("report", cls=_ReportGroup)
def report() -> None:
    """Signed compliance reports: per batch, on the suppression ledger; their verification.

    \b
    Usage:
      scrubber report BATCH [--format text|md|json|csv|html] [-o FILE] [--check]
      scrubber report --all [--since DATE] [--format csv|json] [-o FILE]
      scrubber report ledger [--since DATE] [--format ...] [-o FILE] [--check]
      scrubber report verify FILE [--key KEY]

    \b
    Examples:
      scrubber report 20260101-1a2b3c4d -o audit.html
      scrubber report 20260101-1a2b3c4d --check --format json > /dev/null
      scrubber report verify audit.html
    """


def _output_options(command: Callable[..., None]) -> Callable[..., None]:
    """--format and -o, alike on every command that writes a report."""
    command = click.option(
        "-o",
        "--output",
        "outputs",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the report to this file (repeat for several formats of one document).",
    )(command)
    return click.option(
        "--format",
        "-f",
        "fmt",
        type=click.Choice(formats.FORMATS),
        help="Default: from -o's suffix, else text on a terminal and json in a pipe.",
    )(command)


@report.command(DEFAULT)
@click.argument("batch", required=False)
@click.option("--all", "all_", is_flag=True, help="A summary row per batch instead of one batch.")
@click.option("--since", metavar="DATE", help="With --all: batches created on or after DATE.")
@_output_options
@click.option(
    "--check", is_flag=True, help="Exit with status 3 if a deadline or an invariant fails."
)
@pass_app
def show(
    app: AppContext,
    batch: str | None,
    all_: bool,
    since: str | None,
    fmt: str | None,
    outputs: tuple[Path, ...],
    check: bool,
) -> None:
    """Report on BATCH (an id, a unique prefix of one, or latest), or on every
    batch with --all, signed with the operator key.

    json, md and html reports embed the signed data; check them with
    'scrubber report verify FILE'.

    \b
    Examples:
      scrubber report 20261123-0a1b2c3d --format html -o report.html
      scrubber report 20261123-0a1b2c3d -o r.json -o r.html -o r.md
      scrubber report 20261123-0a1b2c3d --check
      scrubber report --all --since 2026-01-01 --format csv
    """
    if fmt is not None and len(outputs) > 1:
        raise UsageError("with several -o files each format comes from its suffix; drop --format")
    chosen = [formats.format_for(o, fmt, terminal=False) for o in outputs]
    # Signed once: every file written by this call is the same document.
    document = sign.sign_report(_build(app, batch, all_, since), load_key(app.workspace))
    _emit(app, document, fmt, outputs, chosen)
    if check:
        _check(document)


def _emit(
    app: AppContext,
    document: Document,
    fmt: str | None,
    outputs: tuple[Path, ...],
    chosen: list[str],
) -> None:
    """Print the signed document, or write each -o file from it."""
    if not outputs:
        _print(app, document, formats.format_for(None, fmt, terminal=sys.stdout.isatty()))
    for output, one in zip(outputs, chosen, strict=True):
        formats.write_file(output, formats.render(document, one))
        signed = "signed" if one in formats.SIGNED else "unsigned format"
        app.err.print(f"wrote {output} ({one}, {signed})")


def _print(app: AppContext, document: Document, chosen: str) -> None:
    if chosen == "text" and sys.stdout.isatty():
        app.out.print(render_text(document))
    else:
        sys.stdout.write(formats.render(document, chosen))


def _build(
    app: AppContext, batch: str | None, all_: bool, since: str | None
) -> BatchReport | SummaryReport:
    if all_ and batch:
        raise UsageError("give either a BATCH id or --all, not both")
    if since is not None and not all_:
        raise UsageError("--since works with --all only")
    operator = _operator(app)
    if all_:
        return build.build_summary(app.store, _parse_since(since), operator=operator)
    if not batch:
        raise UsageError("give a BATCH id, or --all for every batch (see 'scrubber report -h')")
    return build.build_report(
        app.store, batch_info.resolve_batch_id(app.store, batch), operator=operator
    )


def _operator(app: AppContext) -> build.Operator:
    settings = app.workspace.settings
    return build.Operator(settings.operator_name, settings.operator_contact)


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r} is not a date (use YYYY-MM-DD)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _check(document: Document) -> None:
    if is_summary(document):
        bad = [row["batch"] for row in document["batches"] if not row["ok"]]
        if bad:
            raise ReportCheckFailed(f"check failed for batch(es): {', '.join(bad)}")
        return
    found = formats.failures(document)
    if found:
        raise ReportCheckFailed("check failed: " + "; ".join(found))


@report.command("ledger")
@click.option("--since", metavar="DATE", help="Only suppressions committed on or after DATE (UTC).")
@_output_options
@click.option("--check", is_flag=True, help="Exit with status 3 if a deadline was missed.")
@pass_app
def ledger(
    app: AppContext, since: str | None, fmt: str | None, outputs: tuple[Path, ...], check: bool
) -> None:
    """Every suppression by channel, reason and origin, with its deadline clocks.

    Per request: received to committed, and received to the first list export
    or batch that left the address out (sending stopped), judged against the
    deadline table in scrubber.toml ([scrubber.deadlines]). Signed like batch
    reports; check with 'scrubber report verify FILE'.

    \b
    Examples:
      scrubber report ledger --since 2026-11-01 -o ledger.html
      scrubber report ledger --format csv > ledger.csv
      scrubber report ledger --check --format json > /dev/null
    """
    if fmt is not None and len(outputs) > 1:
        raise UsageError("with several -o files each format comes from its suffix; drop --format")
    chosen = [formats.format_for(o, fmt, terminal=False) for o in outputs]
    settings = app.workspace.settings
    document = ledger_report.build_ledger(
        app.store, settings.deadlines, since=_parse_since(since), operator=_operator(app)
    )
    _emit(app, sign.sign_report(document, load_key(app.workspace)), fmt, outputs, chosen)
    if check:
        _check(document)


@report.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_text",
    metavar="KEY",
    help="Expected public key: base64 or a .pub file (default: the workspace's key, if any).",
)
@pass_app
def verify(app: AppContext, file: Path, key_text: str | None) -> None:
    """Check the signature of a json, md or html report; exit 1 on any change.

    \b
    Example:
      scrubber report verify report.html
    """
    result = sign.verify_file(file, _trusted_keys(app, key_text))
    layout = "" if result.layout_checked else " (version 1 report: signed data checked, layout not)"
    app.out.print(
        f"valid: {file} ({result.format}) is the unchanged report on {result.subject}, "
        f"signed by {result.trusted_as} {result.key_fingerprint}{layout}"
    )


def _trusted_keys(app: AppContext, key_text: str | None) -> dict[bytes, str]:
    """--key (base64 or a file), else the workspace's current and retired keys."""
    if key_text is not None:
        path = Path(key_text)
        try:
            text = path.read_text(encoding="ascii") if path.is_file() else key_text
            return {keys.decode_public(text): "the key given with --key"}
        except (OSError, UnicodeDecodeError, ValueError):
            raise UsageError(f"--key {key_text!r} is neither a public key nor a key file") from None
    try:
        workspace = app.workspace
    except WorkspaceError:
        return {}
    public = workspace.path(workspace.settings.public_key)
    try:
        current = keys.read_public(public)
    except KeyFileError:
        raise KeyFileError(f"cannot read the workspace's public key {public}") from None
    private = workspace.path(workspace.settings.private_key)
    trusted = {old: "the workspace's retired key" for old in keys.retired_public_keys(private)}
    trusted[current] = "the workspace key"
    return trusted


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def status_(app: AppContext, as_json: bool) -> None:
    """One screen: lists, batches, pings today, suppressions, listener health.

    Exits 5 when the listener is down, 6 when it serves another key,
    7 when an accepted opt-out has waited over 24 h for its suppression.

    \b
    Example:
      scrubber status --json
    """
    workspace = app.workspace
    key = keys.encode_public(keys.read_public(workspace.path(workspace.settings.public_key)))
    settings = workspace.settings
    app.waiting(f"checking the listener at http://{settings.http_host}:{settings.http_port}")
    facts = status.gather(app.store, workspace.settings, key)
    if as_json:
        print_json(dataclasses.asdict(facts))
    else:
        _print_status(app, facts)
    _listener_verdict(facts.listener)
    if facts.at_risk:
        raise DeadlineAtRisk(
            f"{facts.at_risk} accepted opt-out(s) unsuppressed for over 24 h: the 48 h "
            "deadline is at risk (scrubber report BATCH --check)"
        )


def _listener_verdict(health: status.Health) -> None:
    """Exit 5 when the listener is down, 6 when it serves another key (for cron)."""
    if not health.up:
        raise ListenerDown(f"listener {health.url} is down: {health.detail}")
    if not health.key_ok:
        raise ListenerWrongKey(f"listener {health.url} is not this workspace's: {health.detail}")


def _print_status(app: AppContext, facts: status.Status) -> None:
    out = app.out
    out.print(f"[bold]scrubber status[/] - workspace {app.workspace.root}")
    out.print(_lists_table(facts))
    out.print(_batches_table(facts))
    out.print(_counts_table("Pings today (UTC)", facts.pings_today, "no pings today"))
    out.print(_counts_table("Suppressions", facts.suppressions, "no suppressions"))
    health = facts.listener
    state = "[green]up[/]" if health.up else "[yellow]down[/]"
    out.print(f"[bold]Listener[/] {health.url}: {state} - {health.detail}")


def _lists_table(facts: status.Status) -> Table:
    table = Table(title="Lists (times in UTC)", title_justify="left")
    for column in ("list", "addresses", "suppressed", "last import"):
        table.add_column(column)
    for info in facts.lists:
        last = _minute(info.last_import_at)
        table.add_row(info.name, f"{info.addresses:,}", f"{info.suppressed:,}", last)
    if not facts.lists:
        table.caption = "no lists yet: scrubber list import NAME FILE"
    return table


def _batches_table(facts: status.Status) -> Table:
    shown = len(facts.recent_batches)
    table = Table(
        title=f"Batches ({facts.batches_total} in all, newest {shown})", title_justify="left"
    )
    for column in ("batch", "created", "addresses", "parts posted", "opt-outs"):
        table.add_column(column)
    for line in facts.recent_batches:
        parts = f"{line.parts_posted}/{line.parts_total}"
        created = _minute(line.created_at)
        table.add_row(line.id, created, f"{line.count:,}", parts, f"{line.accepted:,}")
    return table


def _minute(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"


def _counts_table(title: str, counts: dict[str, int], empty: str) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    table.add_row("total", f"{sum(counts.values()):,}")
    if not counts:
        table.caption = empty
    return table


COMMANDS: list[click.Command] = [report, status_]
