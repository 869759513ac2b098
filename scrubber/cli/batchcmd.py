"""scrubber batch create|post|ls|show."""

from __future__ import annotations

import click
from rich.table import Table

from scrubber import hashing
from scrubber.batch import create as batch_create
from scrubber.batch import info as batch_info
from scrubber.batch import post as batch_post
from scrubber.cli.context import AppContext, executor_option, pass_app, print_json
from scrubber.private import redact_url
from scrubber.transport import Transport, open_transport
from scrubber.workspace import load_key


@click.group("batch")
def batch_group() -> None:
    """Create hash batches of your lists and post them to Usenet."""


@batch_group.command("create")
@click.argument("lists", nargs=-1, required=True)
@click.option(
    "--protocol",
    type=click.Choice(["1", "2"]),
    default="2",
    show_default=True,
    help="Article format: 2 (unlinkable values, Golomb-coded) or 1 (plain tags).",
)
@click.option(
    "--encoding",
    type=click.Choice(["yenc", "base64"]),
    default="yenc",
    show_default=True,
    help="Protocol 2 tag block: yenc, or base64 for 7-bit paths.",
)
@click.option("--tag-length", type=click.IntRange(4, 16), help="v1 tag bytes (default: config).")
@click.option("--expires", "expires_days", type=click.IntRange(min=1), help="Days until expiry.")
@click.option("--group", "newsgroup", help="Newsgroup to post to (default: config).")
@click.option("--workers", type=click.IntRange(min=1), help="Hashing workers (default: cores).")
@executor_option
@click.option("--json", "as_json", is_flag=True, help="Print the new batch as JSON (for scripts).")
@pass_app
def create(
    app: AppContext,
    lists: tuple[str, ...],
    protocol: str,
    encoding: str,
    tag_length: int | None,
    expires_days: int | None,
    newsgroup: str | None,
    workers: int | None,
    executor: str,
    as_json: bool,
) -> None:
    """Snapshot LISTS minus suppressed addresses, hash them and store a batch.

    \b
    Example:
      scrubber batch create customers newsletter --expires 14
      scrubber batch create customers --protocol 1 --tag-length 6
    """
    settings = app.workspace.settings
    request = batch_create.request_from_settings(
        settings,
        lists,
        tag_length=tag_length,
        expires_days=expires_days,
        newsgroup=newsgroup,
        protocol=int(protocol),
        encoding=encoding,
    )
    key = load_key(app.workspace)
    pool = hashing.open_executor(executor, workers)
    try:
        with app.progress("hashing", None, unit="addresses") as advance:
            created = batch_create.create_batch(
                app.store,
                settings,
                key,
                request,
                pool,
                on_hashed=advance,
                on_total=advance.set_total,
            )
    finally:
        pool.close()
    b = created.batch
    detail = batch_info.batch_detail(app.store, b.id)
    if as_json:
        print_json(detail.to_json())
        return
    table = Table(title=f"batch {b.id}", show_header=False)
    table.add_row("lists", ", ".join(created.lists))
    table.add_row("addresses", f"{b.count:,}")
    table.add_row("hashed now / cached", f"{created.hashed.computed:,} / {created.hashed.cached:,}")
    table.add_row("parts", str(b.parts_total))
    table.add_row("protocol", detail.protocol_line)
    table.add_row("newsgroup", b.newsgroup)
    table.add_row("expires", f"{b.expires_at:%Y-%m-%d %H:%M} UTC")
    table.add_row("respond (HTTP)", b.respond_http)
    table.add_row("respond (SMTP)", b.respond_smtp)
    app.out.print(table)
    app.out.print(f"next: scrubber batch post {b.id}")


@batch_group.command("post")
@click.argument("batch_id", metavar="BATCH")
@click.option(
    "--server",
    help="nntp://[USER:PASS@]HOST[:PORT], nntps://... or spool:DIR (default: config post_server).",
)
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True)
@click.option("--retries", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print what was posted as JSON.")
@pass_app
def post(
    app: AppContext,
    batch_id: str,
    server: str | None,
    timeout: float,
    retries: int,
    as_json: bool,
) -> None:
    """Post the parts of BATCH not posted yet; safe to re-run after a failure.

    BATCH is an id, a unique prefix of one, or latest.

    \b
    Example:
      scrubber batch post 20261123-0a1b2c3d --server nntp://news.example.org
    """
    batch_id = batch_info.resolve_batch_id(app.store, batch_id)
    work = batch_post.pending(app.store, batch_id)
    if not work.parts:
        if as_json:
            print_json(
                {
                    "batch": batch_id,
                    "parts_total": work.batch.parts_total,
                    "posted": 0,
                    "duplicates": 0,
                    "already": work.batch.parts_total,
                    "parts": [],
                }
            )
            return
        app.out.print(f"batch {batch_id}: all {work.batch.parts_total} parts already posted")
        return
    key = load_key(app.workspace)

    def connect() -> Transport:
        target = server or app.workspace.settings.post_server
        app.waiting(f"connecting to {redact_url(target)}")
        return open_transport(
            target,
            newsgroup=work.batch.newsgroup,
            base=app.workspace.root,
            timeout=timeout,
            retries=retries,
        )

    with app.progress(f"posting {len(work.parts)} parts", work.bytes, unit="bytes") as advance:
        summary = batch_post.post_batch(
            app.store, work, key, connect, on_part=lambda r: advance(r.size)
        )
    if as_json:
        parts = [
            {"part": r.part, "message_id": r.message_id, "bytes": r.size, "result": r.status.value}
            for r in summary.results
        ]
        print_json(
            {
                "batch": batch_id,
                "server": summary.server,
                "parts_total": summary.parts_total,
                "posted": summary.posted,
                "duplicates": summary.duplicates,
                "already": summary.already,
                "parts": parts,
            }
        )
        return
    table = Table(title=f"batch {batch_id} -> {summary.server}")
    for column in ("part", "Message-ID", "bytes", "result"):
        table.add_column(column, overflow="fold")
    for r in summary.results:
        table.add_row(str(r.part), r.message_id, f"{r.size:,}", r.status.value)
    app.out.print(table)
    app.out.print(
        f"{summary.posted} posted, {summary.duplicates} already on the server, "
        f"{summary.already} posted earlier; {summary.parts_total} parts in all"
    )


@batch_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def ls(app: AppContext, as_json: bool) -> None:
    """List batches with their post status and ping counts.

    \b
    Example:
      scrubber batch ls --json
    """
    infos = batch_info.batch_infos(app.store)
    if as_json:
        print_json([i.to_json() for i in infos])
        return
    table = Table(title="batches")
    for column in ("batch", "created", "lists", "addresses", "parts", "pings", "expires"):
        table.add_column(column, overflow="fold")
    for i in infos:
        table.add_row(
            i.id,
            f"{i.created_at:%Y-%m-%d %H:%M}",
            ", ".join(i.lists),
            f"{i.addresses:,}",
            f"{i.parts_posted}/{i.parts_total} posted",
            str(sum(i.pings.values())),
            f"{i.expires_at:%Y-%m-%d}",
        )
    app.out.print(table)


@batch_group.command("show")
@click.argument("batch_id", metavar="BATCH")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: AppContext, batch_id: str, as_json: bool) -> None:
    """Show one batch: metadata, parts with Message-IDs and status, pings.

    BATCH is an id, a unique prefix of one, or latest.

    \b
    Example:
      scrubber batch show 20261123-0a1b2c3d
    """
    detail = batch_info.batch_detail(app.store, batch_info.resolve_batch_id(app.store, batch_id))
    if as_json:
        print_json(detail.to_json())
        return
    i = detail.info
    meta = Table(title=f"batch {i.id}", show_header=False)
    meta.add_column(overflow="fold")
    meta.add_column(overflow="fold")
    meta.add_row("lists", ", ".join(i.lists))
    meta.add_row("addresses", f"{i.addresses:,}")
    meta.add_row("created / expires", f"{i.created_at:%Y-%m-%d %H:%M} / {i.expires_at:%Y-%m-%d}")
    meta.add_row("newsgroup", i.newsgroup)
    meta.add_row("salt", detail.salt)
    meta.add_row("argon2", ", ".join(f"{k}={v}" for k, v in detail.argon2.items()))
    meta.add_row("protocol", detail.protocol_line)
    meta.add_row("respond", f"{detail.respond_http}\n{detail.respond_smtp}")
    meta.add_row("key", detail.key)
    pings = ", ".join(f"{k} {v}" for k, v in sorted(i.pings.items())) or "none"
    meta.add_row("pings", pings)
    app.out.print(meta)
    parts = Table(title=f"parts ({i.parts_posted}/{i.parts_total} posted)")
    for column in ("part", "Message-ID", "tags", "range", "bytes", "posted", "server"):
        parts.add_column(column, overflow="fold")
    for p in detail.parts:
        posted = f"{p.posted_at:%Y-%m-%d %H:%M:%S}" if p.posted_at else "pending"
        parts.add_row(
            str(p.part),
            p.message_id,
            f"{p.count:,}",
            f"{p.first_tag}..{p.last_tag}",
            f"{p.size:,}",
            posted,
            p.server or "",
        )
    app.out.print(parts)


COMMANDS: list[click.Command] = [batch_group]
