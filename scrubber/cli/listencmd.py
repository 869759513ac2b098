"""scrubber listen: the opt-out listener (SMTP + HTTP)."""

from __future__ import annotations

import click

from scrubber.cli.context import AppContext, pass_app
from scrubber.listener import server
from scrubber.listener.http import path_prefix
from scrubber.listener.logs import configure_logging
from scrubber.workspace import load_key


@click.command("listen")
@click.option("--smtp", metavar="HOST:PORT|off", help="SMTP address (default: from scrubber.toml).")
@click.option("--http", metavar="HOST:PORT|off", help="HTTP address (default: from scrubber.toml).")
@click.option(
    "--client-rate",
    type=click.IntRange(min=0),
    help="Worthless proofs (invalid, repeated) per minute per client address, "
    "at least one full request in flight; 0 = no limit "
    "(default: rate_limit_per_minute from scrubber.toml).",
)
@click.option(
    "--token-rate",
    type=click.IntRange(min=0),
    default=60_000,
    show_default=True,
    help="Worthless proofs per minute per response token before clients that "
    "sent such proofs lately are refused for it (never the others); 0 = no limit.",
)
@click.option(
    "--read-timeout",
    type=click.FloatRange(min=0.1),
    default=15.0,
    show_default=True,
    help="Seconds a client may stay silent (HTTP body, SMTP session) before it is dropped.",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="ADDRESS|NETWORK",
    help="A reverse proxy whose X-Forwarded-For names the real HTTP client; repeatable "
    "(default: trusted_proxies from scrubber.toml).",
)
@click.option(
    "--smtp-proxy-protocol",
    is_flag=True,
    help="SMTP connections from a --trusted-proxy open with a PROXY protocol header "
    "(v1 or v2) naming the real client, as nginx's stream proxy_protocol sends.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Concurrent connections per channel (lowered to fit the open-file limit).",
)
@click.option(
    "--max-client-connections",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Concurrent connections per channel from one client address (trusted proxies excepted).",
)
@click.option(
    "--smtp-idle-timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds an SMTP session may go without HELO/EHLO/MAIL/RCPT/DATA "
    "(NOOP and RSET do not count).",
)
@click.option(
    "--smtp-session-timeout",
    type=click.FloatRange(min=0.1),
    default=300.0,
    show_default=True,
    help="Seconds an SMTP session may last in all.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning"]),
    default="info",
    show_default=True,
)
@pass_app
def listen(
    app: AppContext,
    smtp: str | None,
    http: str | None,
    client_rate: int | None,
    token_rate: int,
    read_timeout: float,
    trusted_proxies: tuple[str, ...],
    smtp_proxy_protocol: bool,
    max_connections: int,
    max_client_connections: int,
    smtp_idle_timeout: float,
    smtp_session_timeout: float,
    log_level: str,
) -> None:
    """Collect opt-out pings on SMTP and HTTP; suppress matched addresses.

    Runs until SIGTERM or Ctrl-C, then finishes and commits what is in
    flight. Port 0 picks a free port (logged at start).

    \b
    Examples:
      scrubber listen --smtp 0.0.0.0:2525 --http 127.0.0.1:8025
      scrubber listen --http 127.0.0.1:8025 --trusted-proxy 127.0.0.1
    """
    settings = app.workspace.settings
    key = load_key(app.workspace)
    config = server.ListenConfig(
        smtp=server.parse_endpoint(smtp or f"{settings.smtp_host}:{settings.smtp_port}", "--smtp"),
        http=server.parse_endpoint(http or f"{settings.http_host}:{settings.http_port}", "--http"),
        client_per_minute=(settings.rate_limit_per_minute if client_rate is None else client_rate),
        token_per_minute=token_rate,
        key_public=key.public_b64,
        key_fingerprint=key.fingerprint,
        read_timeout=read_timeout,
        log_level=log_level,
        max_connections=max_connections,
        max_client_connections=max_client_connections,
        smtp_idle_timeout=smtp_idle_timeout,
        smtp_session_timeout=smtp_session_timeout,
        trusted_proxies=trusted_proxies or (settings.trusted_proxies,),
        smtp_proxy_protocol=smtp_proxy_protocol,
        prefix=path_prefix(settings.response_base_url),
    )
    configure_logging(log_level)
    server.run(app.workspace, app.store, config)


COMMANDS: list[click.Command] = [listen]
