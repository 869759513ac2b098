"""scrubber list import|export|show|ls|rm|rename|suppress|hash."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from scrubber import lists, scheme
from scrubber.cli.context import (
    AppContext,
    executor_option,
    folded,
    pass_app,
    print_json,
    print_table,
)
from scrubber.errors import InputFileError, UsageError
from scrubber.private import parse_mode
from scrubber.readers import STDIN


@click.group("list")
def list_group() -> None:
    """Import, export and suppress the addresses of your mailing lists."""


def reader_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--column`` and ``--encoding``: the same for every command reading address files."""
    command = click.option(
        "--encoding",
        metavar="NAME",
        help="Text encoding of the files (default: detected from a byte-order mark, "
        "UTF-16, UTF-8, else the likeliest legacy 8-bit one; reported).",
    )(command)
    return click.option(
        "--column",
        metavar="NAME|NUMBER",
        help="CSV column holding the address: header name or 1-based number "
        "(default: a header such as Email, Email Address, E-mail or Courriel, "
        "else the column whose values are addresses).",
    )(command)


INPUT_FILE = click.Path(dir_okay=False, path_type=Path, allow_dash=True)


def dry_run_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")(
        command
    )


@list_group.command("import")
@click.argument("name")
@click.argument("files", nargs=-1, required=True, type=INPUT_FILE)
@reader_options
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected lines go (default: rejects/NAME-<time>.csv in the workspace).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Make the list equal to FILES: entries they do not hold leave the list "
    "(suppressions stay).",
)
@click.option(
    "--new",
    is_flag=True,
    help="NAME is a new list: create it even if it looks like a file name or like "
    "another list's name in other case; refuse if it exists.",
)
@dry_run_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def import_(
    app: AppContext,
    name: str,
    files: tuple[Path, ...],
    column: str | None,
    encoding: str | None,
    rejects: Path | None,
    replace: bool,
    new: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Import addresses from FILES into list NAME (created if new); - is stdin.

    Plain text (one address a line), CSV (address column auto-detected) or
    .gz of either, in any common encoding; "Name <address>" gives its
    address. Duplicates fold by canonical form; re-importing is a no-op;
    rejected lines go to a CSV with their reason. All or nothing. A new
    NAME that looks like a file or differs from a list only in case needs
    --new.

    \b
    Example:
      scrubber list import customers customers.csv.gz --column email
      mysql -e 'select email from users' | scrubber list import customers -
      scrubber list import customers fresh-export.csv --replace --dry-run
    """
    for path in files:
        if path == STDIN:
            continue
        if path.is_dir():
            raise InputFileError(f"cannot read {path}: it is a directory")
        if not path.exists():
            raise InputFileError(f"cannot read {path}: no such file")
    total = sum(p.stat().st_size for p in files if p != STDIN and p.is_file()) or None
    rejects = rejects or app.workspace.rejects_path(name)
    with app.progress(f"importing {name}", total, unit="bytes") as advance:
        summary = lists.import_files(
            app.store,
            name,
            list(files),
            rejects_path=rejects,
            column=column,
            encoding=encoding,
            on_bytes=advance,
            replace=replace,
            new=new,
            dry_run=dry_run,
        )
    if as_json:
        print_json({**asdict(summary), "folded": summary.folded})
        return
    title = f"import into {name}" + (" (dry run: nothing written)" if dry_run else "")
    table = Table(title=title, show_header=False)
    for source, used in summary.encodings.items():
        table.add_row(f"encoding of {source}", used)
    table.add_row("lines read", f"{summary.lines:,}")
    table.add_row("accepted", f"{summary.accepted:,}")
    table.add_row("duplicates folded", f"{summary.folded:,}")
    table.add_row("already on the list", f"{summary.already_listed:,}")
    table.add_row("added", f"{summary.added:,}")
    if replace:
        table.add_row("removed (not in the files)", f"{summary.removed:,}")
    table.add_row("rejected", f"{summary.rejected:,}")
    app.out.print(folded(table))
    if summary.rejects_path:
        app.out.print(f"rejected lines: {summary.rejects_path}")


@list_group.command("export")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of standard output.",
)
@click.option(
    "--mode",
    default="600",
    show_default=True,
    help="File mode of --output, in octal (addresses are private: widen on purpose).",
)
@click.option(
    "--minus",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also leave out addresses whose digest is in this hashed suppression file "
    "(MD5/SHA-1/SHA-256/SHA-512 hex a line; plain, .gz or .zip). Repeatable.",
)
@dry_run_option
@pass_app
def export(
    app: AppContext,
    name: str,
    output: Path | None,
    mode: str,
    minus: tuple[Path, ...],
    dry_run: bool,
) -> None:
    """Write list NAME minus every suppressed address, in original spelling.

    --minus FILE scrubs against an advertiser's hashed suppression file
    (OPTIZMO style: lower case, trimmed, then the digest); an address matches
    by its spelling or by its canonical form, and the summary counts each.

    \b
    Example:
      scrubber list export customers -o customers-clean.txt --mode 640
      scrubber list export customers --minus optout.md5.zip -o mailable.txt
    """
    file_mode = parse_mode(mode)
    start = lists.begin_export(app.store, name)
    addresses = lists.iter_export(app.store, name)
    summary = None
    if minus:
        from scrubber import minus as scrubbing

        scrubber = scrubbing.Scrubber(minus)
        found = scrubber.matches(lambda: lists.iter_export_rows(app.store, name))
        summary = scrubbing.MinusSummary()
        addresses = scrubbing.scrub(lists.iter_export_rows(app.store, name), found, summary)
    if dry_run:
        count = sum(1 for _ in addresses)
        where = f" to {output}" if output else ""
        app.err.print(f"dry run: would write {count:,} addresses{where}; nothing written")
    else:
        count = _write_export(app, addresses, output, file_mode)
        lists.finish_export(app.store, start, count)
    if summary is not None:
        app.err.print(
            f"--minus: left out {summary.left_out:,} ({summary.by_original:,} by spelling, "
            f"{summary.by_canonical:,} only by canonical form)"
        )


def _write_export(
    app: AppContext, addresses: Iterator[str], output: Path | None, file_mode: int
) -> int:
    if output is None:
        return sum(sys.stdout.write(address + "\n") > 0 for address in addresses)
    count = lists.write_export(addresses, output, mode=file_mode)
    app.err.print(f"wrote {count:,} addresses to {output}")
    return count


@list_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def ls(app: AppContext, as_json: bool) -> None:
    """Show every list with its counts.

    \b
    Example:
      scrubber list ls --json
    """
    infos = lists.list_infos(app.store)
    if as_json:
        print_json([info.__dict__ for info in infos])
        return
    rows = (
        (
            info.name,
            f"{info.addresses:,}",
            f"{info.suppressed:,}",
            f"{info.last_import_at:%Y-%m-%d %H:%M}" if info.last_import_at else "-",
        )
        for info in infos
    )
    print_table(app, ("name", "addresses", "suppressed", "last import"), rows)


@list_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: AppContext, name: str, as_json: bool) -> None:
    """Show one list: counts and import history.

    \b
    Example:
      scrubber list show customers --json
    """
    info = lists.list_info(app.store, name)
    if as_json:
        history = [
            {
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "source": run.source,
                "lines": run.lines,
                "accepted": run.accepted,
                "added": run.added,
                "rejected": run.rejected,
            }
            for run in lists.import_history(app.store, name)
        ]
        print_json({**asdict(info), "imports": history})
        return
    app.out.print(
        f"[bold]{info.name}[/]: {info.addresses:,} addresses, "
        f"{info.suppressed:,} suppressed, created {info.created_at:%Y-%m-%d}"
    )
    rows = (
        (
            f"{run.finished_at:%Y-%m-%d %H:%M}",
            run.source,
            f"{run.lines:,}",
            f"{run.accepted:,}",
            f"{run.added:,}",
            f"{run.rejected:,}",
        )
        for run in lists.import_history(app.store, name)
    )
    print_table(app, ("imported", "source", "lines", "accepted", "added", "rejected"), rows)


@list_group.command("rm")
@click.argument("name")
@dry_run_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def rm(app: AppContext, name: str, dry_run: bool, as_json: bool) -> None:
    """Delete list NAME: its entries and import history.

    Suppressions stay: they are yours, not the list's, and keep every
    address out of every list and batch. Batches made from NAME keep their
    proofs (pings still suppress).

    \b
    Example:
      scrubber list rm old-promo --dry-run
    """
    summary = lists.remove_list(app.store, name, dry_run=dry_run)
    if as_json:
        print_json(asdict(summary))
        return
    verb = "would remove" if dry_run else "removed"
    app.out.print(
        f"{verb} list {name}: {summary.entries:,} entries, {summary.imports:,} imports, "
        f"named by {summary.batches:,} batches; suppressions kept"
        + ("; nothing written (dry run)" if dry_run else "")
    )


@list_group.command("rename")
@click.argument("old")
@click.argument("new")
@pass_app
def rename(app: AppContext, old: str, new: str) -> None:
    """Rename list OLD to NEW (entries, history and batches follow).

    \b
    Example:
      scrubber list rename Customers customers
    """
    lists.rename_list(app.store, old, new)
    app.out.print(f"renamed list {old} to {new}")


@list_group.command("suppress")
@click.argument("addresses", nargs=-1)
@click.option(
    "--file",
    "file_",
    type=INPUT_FILE,
    help="Read addresses from this file (text, CSV or .gz; - is stdin).",
)
@reader_options
@click.option("--origin", help="Who asked, recorded in the ledger (e.g. 'phone call 2025-03-01').")
@dry_run_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def suppress(
    app: AppContext,
    addresses: tuple[str, ...],
    file_: Path | None,
    column: str | None,
    encoding: str | None,
    origin: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Suppress ADDRESSES on every list, permanently (opt-outs from other channels).

    Recorded in the ledger on the manual channel; 'scrubber suppress lift'
    undoes one entered by mistake.

    \b
    Example:
      scrubber list suppress jane@example.com --file unsubscribes.csv --origin helpdesk
    """
    from scrubber.readers import read_addresses

    if not addresses and file_ is None:
        raise UsageError("give addresses or --file")
    if (column or encoding) and file_ is None:
        raise UsageError("--column and --encoding apply to --file")
    found = list(addresses)
    if file_ is not None:
        cells = read_addresses(file_, column=column, encoding=encoding)
        found += [text for _, text in cells]
    summary = lists.suppress(app.store, found, origin=origin, dry_run=dry_run)
    if summary.rejected and summary.added + summary.already == 0:
        raw, reason = summary.rejected[0]
        more = f" (and {len(summary.rejected) - 1} more)" if len(summary.rejected) > 1 else ""
        raise UsageError(f"no valid address given: {scheme.mask(raw)!r} is {reason}{more}")
    if as_json:
        rejected = [{"input": scheme.mask(r), "reason": why} for r, why in summary.rejected]
        print_json(
            {
                "added": summary.added,
                "already": summary.already,
                "rejected": rejected,
                "dry_run": dry_run,
            }
        )
        return
    if dry_run:
        app.out.print(
            f"dry run: would suppress {summary.added:,} new, {summary.already:,} already "
            "suppressed; nothing written"
        )
    else:
        app.out.print(f"suppressed {summary.added:,} new, {summary.already:,} already suppressed")
    for raw, reason in summary.rejected:
        app.err.print(f"rejected {scheme.mask(raw)}: {reason}")


@list_group.command("hash")
@click.argument("names", nargs=-1, required=True)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Hashing workers (default: one per core)."
)
@executor_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def hash_(
    app: AppContext, names: tuple[str, ...], workers: int | None, executor: str, as_json: bool
) -> None:
    """Hash lists in the current salt epoch (only addresses not cached yet).

    \b
    Example:
      scrubber list hash customers newsletter
      scrubber list hash customers --executor tcp://scheduler:8786
    """
    settings = app.workspace.settings
    with app.progress("hashing", None, unit="addresses") as advance:
        summary = lists.hash_lists(
            app.store,
            names,
            settings.params,
            settings.salt_epoch_days,
            executor=executor,
            workers=workers,
            on_done=advance,
            on_total=advance.set_total,
        )
    if as_json:
        print_json(asdict(summary))
        return
    app.out.print(
        f"{summary.needed:,} addresses: {summary.cached:,} cached, "
        f"{summary.computed:,} hashed (epoch {summary.epoch_id})"
    )


COMMANDS = [list_group]
