"""scrubber batch create|post|ls|show."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from scrubber import hashing
from scrubber.batch import create as batch_create
from scrubber.batch import info as batch_info
from scrubber.batch import post as batch_post
from scrubber.cli.context import AppContext, executor_option, pass_app, print_json, print_table
from scrubber.errors import TransportError
from scrubber.keys import OperatorKey
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
    "servers",
    multiple=True,
    help="nntp://[USER:PASS@]HOST[:PORT], nntps://... or spool:DIR; repeat to post to "
    "several (default: config post_server).",
)
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True)
@click.option("--retries", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print what was posted as JSON.")
@pass_app
def post(
    app: AppContext,
    batch_id: str,
    servers: tuple[str, ...],
    timeout: float,
    retries: int,
    as_json: bool,
) -> None:
    """Post the parts of BATCH each server lacks; safe to re-run after a failure.

    BATCH is an id, a unique prefix of one, or latest. Parts are tracked per
    server: a batch posted to one server can be posted to another later, and
    a server that fails does not stop the others (the exit status says so).

    \b
    Example:
      scrubber batch post 20261123-0a1b2c3d --server nntp://news.example.org
      scrubber batch post latest --server nntp://news.a.example --server nntps://news.b.example
    """
    batch_id = batch_info.resolve_batch_id(app.store, batch_id)
    root = app.workspace.root
    urls = batch_post.distinct_servers(servers or (app.workspace.settings.post_server,), base=root)
    works = [batch_post.pending(app.store, batch_id, name) for name in urls]
    key = load_key(app.workspace) if any(w.parts for w in works) else None
    outcomes: list[batch_post.PostSummary | TransportError] = []
    for work in works:
        try:
            outcomes.append(_post_to(app, work, key, urls[work.server], timeout, retries))
        except TransportError as error:
            if len(works) == 1:
                raise  # one server: its own error and exit status, as ever
            outcomes.append(error)
    if as_json:
        print_json(_post_json(batch_id, works, outcomes))
    else:
        for work, outcome in zip(works, outcomes, strict=True):
            _print_post(app, work, outcome)
    failed = sum(isinstance(o, TransportError) for o in outcomes)
    if failed:
        raise TransportError(
            f"{failed} of {len(works)} servers failed; re-run the same command "
            "to post what they lack"
        )


def _post_to(
    app: AppContext,
    work: batch_post.PendingWork,
    key: OperatorKey | None,
    url: str,
    timeout: float,
    retries: int,
) -> batch_post.PostSummary:
    """Post what ``work.server`` lacks, with a progress bar."""
    if not work.parts or key is None:
        return batch_post.PostSummary(
            work.batch.id, work.server, work.batch.parts_total, already=work.batch.parts_total
        )

    def connect() -> Transport:
        app.waiting(f"connecting to {work.server}")  # named without credentials
        return open_transport(
            url,
            newsgroup=work.batch.newsgroup,
            base=app.workspace.root,
            timeout=timeout,
            retries=retries,
        )

    total = len(work.parts)
    with app.progress(f"posting {total} parts to {work.server}", work.bytes, unit="bytes") as bar:
        return batch_post.post_batch(app.store, work, key, connect, on_part=lambda r: bar(r.size))


def _post_json(
    batch_id: str,
    works: list[batch_post.PendingWork],
    outcomes: list[batch_post.PostSummary | TransportError],
) -> dict[str, Any]:
    """Totals over the servers at the top (one server: that server's
    figures), each server's parts and results under ``servers``."""
    done = [o for o in outcomes if isinstance(o, batch_post.PostSummary)]
    return {
        "batch": batch_id,
        "parts_total": works[0].batch.parts_total,
        "posted": sum(s.posted for s in done),
        "duplicates": sum(s.duplicates for s in done),
        "already": sum(s.already for s in done),
        "servers": [
            _server_json(work.server, outcome)
            for work, outcome in zip(works, outcomes, strict=True)
        ],
    }


def _server_json(server: str, outcome: batch_post.PostSummary | TransportError) -> dict[str, Any]:
    if isinstance(outcome, TransportError):
        return {"server": server, "error": outcome.message}
    parts = [
        {"part": r.part, "message_id": r.message_id, "bytes": r.size, "result": r.status.value}
        for r in outcome.results
    ]
    return {
        "server": server,
        "posted": outcome.posted,
        "duplicates": outcome.duplicates,
        "already": outcome.already,
        "parts": parts,
    }


def _print_post(
    app: AppContext,
    work: batch_post.PendingWork,
    outcome: batch_post.PostSummary | TransportError,
) -> None:
    if isinstance(outcome, TransportError):
        app.err.print(f"error: {outcome.message}", markup=False)
        return
    if not outcome.results:
        app.out.print(
            f"batch {work.batch.id}: all {outcome.parts_total} parts already posted "
            f"to {work.server}",
            markup=False,
        )
        return
    print_table(
        app,
        ("part", "Message-ID", "bytes", "result"),
        ((str(r.part), r.message_id, f"{r.size:,}", r.status.value) for r in outcome.results),
        title=f"batch {work.batch.id} -> {work.server}",
    )
    app.out.print(
        f"{outcome.posted} posted, {outcome.duplicates} already on the server, "
        f"{outcome.already} posted earlier; {outcome.parts_total} parts in all"
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
    columns = ("batch", "created", "lists", "addresses", "parts", "pings", "expires")
    print_table(app, columns, map(_ls_row, infos), title="batches")


def _ls_row(i: batch_info.BatchInfo) -> tuple[str, ...]:
    return (
        i.id,
        f"{i.created_at:%Y-%m-%d %H:%M}",
        ", ".join(i.lists),
        f"{i.addresses:,}",
        f"{i.parts_posted}/{i.parts_total} posted",
        str(sum(i.pings.values())),
        f"{i.expires_at:%Y-%m-%d}",
    )


@batch_group.command("show")
@click.argument("batch_id", metavar="BATCH")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: AppContext, batch_id: str, as_json: bool) -> None:
    """Show one batch: metadata, pings, parts with Message-IDs and where each went.

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
    posted_to = ", ".join(f"{name} ({n}/{i.parts_total})" for name, n in detail.servers.items())
    meta.add_row("posted to", posted_to or "nowhere yet")
    app.out.print(meta)
    print_table(
        app,
        ("part", "Message-ID", "tags", "range", "bytes", "posted (UTC) to"),
        map(_part_row, detail.parts),
        title=f"parts ({i.parts_posted}/{i.parts_total} posted)",
    )


def _part_row(p: batch_info.PartInfo) -> tuple[str, ...]:
    posts = "\n".join(f"{x.posted_at:%Y-%m-%d %H:%M:%S} {x.server}" for x in p.posts)
    return (
        str(p.part),
        p.message_id,
        f"{p.count:,}",
        f"{p.first_tag}..{p.last_tag}",
        f"{p.size:,}",
        posts or "pending",
    )


COMMANDS: list[click.Command] = [batch_group]
