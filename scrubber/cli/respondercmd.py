"""scrubber responder add|ls|remove|scan|report: the registrant's side."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import asdict
from pathlib import Path

import click

from scrubber.cli.context import AppContext, pass_app, print_json, print_table
from scrubber.errors import ResponderError, UsageError
from scrubber.private import redact_url
from scrubber.responder import store as rstore
from scrubber.responder.domain import DnsConfig
from scrubber.responder.ping import DEFAULT_DELAY, PingConfig
from scrubber.responder.proxy import parse_proxy
from scrubber.responder.recheck import batches_to_recheck
from scrubber.responder.report import KeyReport, key_reports
from scrubber.responder.run import RunResult, run
from scrubber.responder.run import watch as run_watching
from scrubber.responder.scan import Caps
from scrubber.store.types import utcnow
from scrubber.transport import DEFAULT_GROUP, ArticleSource, open_source


@click.group("responder")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=rstore.ENV_DB,
    help="Responder database (default: $SCRUBBER_RESPONDER_DB, else "
    "~/.local/share/scrubber/responder.db). Never an operator workspace.",
)
@click.pass_context
def responder(ctx: click.Context, db: Path | None) -> None:
    """The registrant's side: protect your addresses and opt out of batches
    that list them (the reference responder)."""
    ctx.meta["responder_db"] = db or rstore.default_db_path()


def _store(ctx: click.Context) -> rstore.ResponderStore:
    store = rstore.ResponderStore.open(ctx.meta["responder_db"])
    ctx.call_on_close(store.close)
    return store


@responder.command("add")
@click.argument("addresses", nargs=-1)
@click.option("--file", "file_", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
@click.pass_context
def add(
    ctx: click.Context, app: AppContext, addresses: tuple[str, ...], file_: Path | None
) -> None:
    """Protect ADDRESSES (or those in --file, one a line). Only the canonical
    form is stored; nothing leaves this machine except proofs. The next scan
    also looks through the batches seen before (still valid, unexpired) for
    the new addresses, fetching only the parts their tags fall in.

    \b
    Example:
      scrubber responder add me@example.org Me+news@Example.org
    """
    wanted = list(addresses) + (rstore.read_address_file(file_) if file_ else [])
    if not wanted:
        raise UsageError("give addresses or --file F")
    store = _store(ctx)
    result = rstore.add_addresses(store, wanted)
    if result.rejected and not result.added and not result.known:
        masked, reason = result.rejected[0]
        more = f" (and {len(result.rejected) - 1} more)" if len(result.rejected) > 1 else ""
        raise UsageError(f"no valid address given: {masked} is {reason}{more}")
    for masked, reason in result.rejected:
        app.err.print(f"rejected {masked}: {reason}")
    app.out.print(
        f"protected {len(result.added)} new, {len(result.known)} already protected, "
        f"{len(result.rejected)} rejected"
    )
    earlier = len(batches_to_recheck(store, rstore.awaiting_recheck(store), utcnow()))
    if earlier:
        app.out.print(f"the next scan looks through {earlier} batches seen earlier for them")


@responder.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@click.pass_context
def ls(ctx: click.Context, app: AppContext, as_json: bool) -> None:
    """List the protected addresses (canonical forms).

    \b
    Example:
      scrubber responder ls
    """
    protected = rstore.list_protected(_store(ctx))
    if as_json:
        print_json(protected)
        return
    for canonical in protected:
        app.out.print(canonical)
    app.err.print(f"{len(protected)} protected")


@responder.command("remove")
@click.argument("addresses", nargs=-1, required=True)
@pass_app
@click.pass_context
def remove(ctx: click.Context, app: AppContext, addresses: tuple[str, ...]) -> None:
    """Stop protecting ADDRESSES (any spelling of them).

    \b
    Example:
      scrubber responder remove me@example.org
    """
    removed, missing = rstore.remove_addresses(_store(ctx), addresses)
    app.out.print(f"removed {removed}")
    if missing:
        raise UsageError(f"{len(missing)} of the given addresses were not protected")


@responder.command("scan")
@click.option("--server", help="News server: nntp://[USER:PASS@]HOST[:PORT] or nntps://...")
@click.option("--spool", type=click.Path(file_okay=False, path_type=Path), help="Spool directory.")
@click.option("--group", default=DEFAULT_GROUP, show_default=True, help="Newsgroup to read.")
@click.option("--once", is_flag=True, help="Scan once and exit (the default).")
@click.option("--watch", type=click.FloatRange(min=1), metavar="SECONDS", help="Scan repeatedly.")
@click.option(
    "--smtp-server",
    metavar="HOST:PORT",
    help="SMTP fallback server (default: the Respond-SMTP domain, port 25).",
)
@click.option(
    "--smtp-port",
    type=click.IntRange(1, 65535),
    default=25,
    show_default=True,
    help="Port of the MX hosts (other values only for tests).",
)
@click.option("--no-smtp", is_flag=True, help="Never fall back to SMTP.")
@click.option(
    "--dns-server",
    metavar="HOST[:PORT]",
    help="Nameserver for the _dni TXT and MX lookups (default: the system's resolver; "
    "with --proxy, required for SMTP pings and reached through the proxy over TCP).",
)
@click.option(
    "--allow-private",
    is_flag=True,
    help="Let key checks and HTTP and SMTP pings go to loopback and private addresses "
    "(tests, lab networks); without it a batch naming such a host is refused.",
)
@click.option(
    "--max-t",
    type=click.IntRange(min=1),
    default=Caps.max_t,
    show_default=True,
    help="Refuse batches with a higher Argon2 time cost.",
)
@click.option(
    "--max-m",
    type=click.IntRange(min=8),
    default=Caps.max_m,
    show_default=True,
    help="Refuse batches with a higher Argon2 memory cost (KiB).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="HTTP retries (backoff 0.5 s, doubling) before SMTP.",
)
@click.option(
    "--proxy",
    metavar="URL",
    help="Send every HTTP and SMTP ping (and key check) through this SOCKS5 proxy: "
    "socks5h://HOST:PORT (Tor: socks5h://127.0.0.1:9050) resolves names at the proxy.",
)
@click.option(
    "--ping-delay",
    type=click.FloatRange(0, 24),
    default=DEFAULT_DELAY / 3600,
    show_default=True,
    metavar="HOURS",
    help="Each proof waits a random time up to this long after it is found "
    "(0: ping at once); later runs send it when due.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
@click.pass_context
def scan(
    ctx: click.Context,
    app: AppContext,
    server: str | None,
    spool: Path | None,
    group: str,
    once: bool,
    watch: float | None,
    smtp_server: str | None,
    smtp_port: int,
    no_smtp: bool,
    dns_server: str | None,
    allow_private: bool,
    max_t: int,
    max_m: int,
    retries: int,
    proxy: str | None,
    ping_delay: float,
    as_json: bool,
) -> None:
    """Read new batch articles, find your addresses, ping their senders.

    Reads from a stored high-water mark per server and group; verifies
    signatures, cost caps, expiry and key binding before any ping; pings over
    HTTP with SMTP as fallback; keeps what could not be sent for the next run.

    Pings wait a random delay (--ping-delay) and can go through a SOCKS5
    proxy such as Tor (--proxy), so a sender learns neither where you are
    nor when you scanned; see docs/security.md for what stays visible.

    \b
    Example:
      scrubber responder add me@example.org
      scrubber responder scan --server nntp://news.example.org --watch 600 \\
          --proxy socks5h://127.0.0.1:9050
    """
    if (server is None) == (spool is None):
        raise UsageError("give exactly one of --server URL or --spool DIR")
    if once and watch is not None:
        raise UsageError("give --once or --watch SECONDS, not both")
    store = _store(ctx)
    caps = Caps(max_t=max_t, max_m=max_m)
    config = PingConfig(
        smtp_server=_host_port(smtp_server, "--smtp-server"),
        smtp_port=smtp_port,
        use_smtp=not no_smtp,
        dns=_dns_config(dns_server),
        allow_private_http=allow_private,
        allow_private_smtp=allow_private,
        proxy=parse_proxy(proxy) if proxy else None,
        delay=ping_delay * 3600,
        retries=retries,
    )
    where = redact_url(server) if server else f"spool {spool}"

    def source() -> ArticleSource:  # opened anew by each run
        app.waiting(f"reading {group} from {where}")
        return open_source(server, spool, group)

    if watch is None:
        show = functools.partial(_show, app, as_json=as_json, watching=False)
        run(store, source, show, caps=caps, ping_config=config)
        return
    show = functools.partial(_show, app, as_json=as_json, watching=True)
    failed = functools.partial(_show_error, app)
    run_watching(store, source, watch, show, failed, caps=caps, ping_config=config)


def _show_error(app: AppContext, error: ResponderError) -> None:
    app.err.print(f"error: {error.message}")


def _host_port(text: str | None, option: str) -> tuple[str, int] | None:
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{option} must be HOST:PORT, not {text!r}")
    return host, int(port)


def _dns_config(text: str | None) -> DnsConfig:
    """HOST, HOST:PORT or [IPv6]:PORT; HOST an IP address (no lookup to find the resolver)."""
    if text is None:
        return DnsConfig()
    host, port = text, 53
    if not _is_ip(text) and ":" in text:
        host, port = _host_port(text, "--dns-server") or (text, 53)
        host = host.removeprefix("[").removesuffix("]")
    if not _is_ip(host):
        raise UsageError(f"--dns-server must be an IP address [and :PORT], not {text!r}")
    return DnsConfig(host, port)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _show(app: AppContext, result: RunResult, *, as_json: bool, watching: bool) -> None:
    if as_json:
        print_json(
            {
                "scan": asdict(result.scan) if result.scan else None,
                "error": result.error,
                "pings": asdict(result.pings),
                "recheck": asdict(result.recheck) if result.recheck else None,
            }
        )
    for found in (result.scan, result.recheck):
        for reason in found.skipped if found else []:
            app.err.print(f"skipped: {reason}")
    for failure in result.pings.failures:
        app.err.print(f"ping: {failure}")
    if result.error and watching:  # else main() prints it once, on exit
        app.err.print(f"error: {result.error}")
    if as_json:
        return
    found = result.scan
    if found is not None:
        app.out.print(
            f"scanned {found.articles} articles, {found.batches} new batches, "
            f"{found.bodies_fetched} bodies fetched, {found.hashed} hashed, "
            f"{found.matches} matches ({found.escalations} escalated)"
        )
    again = result.recheck
    if again is not None and again.batches:
        app.out.print(
            f"looked through {again.batches} earlier batches for newly protected addresses: "
            f"{again.bodies_fetched} bodies fetched, {again.matches} matches"
        )
    pings = result.pings
    app.out.print(
        f"pinged {pings.delivered} proofs in {pings.requests} requests, "
        f"{pings.refused} refused, {pings.pending} still owed"
    )
    if pings.waiting and pings.next_due is not None:
        app.out.print(
            f"{pings.waiting} proofs wait for their random delay; the first is due "
            f"{pings.next_due:%Y-%m-%d %H:%M} UTC (a scan after that sends it)"
        )


@responder.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@click.pass_context
def report(ctx: click.Context, app: AppContext, as_json: bool) -> None:
    """Per sender key: batches, pings, answers and escalations (compliance failures).

    \b
    Example:
      scrubber responder report --json
    """
    rows = key_reports(_store(ctx))
    if as_json:
        print_json([asdict(row) for row in rows])
        return
    columns = ("key", "batches", "refused", "forged", "matches", "pings", "owed", "answers",
               "outcomes", "escalations")  # fmt: skip
    print_table(app, columns, map(_report_row, rows), title="senders by key")
    for row in rows:
        if row.escalations:
            app.out.print(
                f"compliance failure: key {row.fingerprint} re-listed "
                f"{len(row.relisted)} addresses already opted out: {', '.join(row.relisted[:10])}"
            )


def _report_row(row: KeyReport) -> tuple[str, ...]:
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(row.answers.items()))
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(row.outcomes.items()))
    return (
        row.fingerprint,
        str(row.batches),
        str(row.refused_batches),
        str(row.forged_batches),
        str(row.matches),
        str(row.pings_sent),
        str(row.pings_owed),
        answers or "-",
        outcomes or "-",
        str(row.escalations),
    )


COMMANDS: list[click.Command] = [responder]
