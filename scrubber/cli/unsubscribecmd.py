"""scrubber unsubscribe header|stamp: List-Unsubscribe headers for the operator's mailer."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scrubber import unsubscribe
from scrubber.cli.context import AppContext, pass_app


@click.group("unsubscribe")
def unsubscribe_group() -> None:
    """One-click (RFC 8058) and mailto (RFC 2369) unsubscribe headers for your mail."""


def _fields(app: AppContext, address: str, list_name: str) -> dict[str, str]:
    settings = app.workspace.settings
    secret = unsubscribe.load_secret(app.workspace.root)
    who = unsubscribe.subscriber(app.store, address, list_name, secret=secret)
    token = unsubscribe.make_token(secret, who)
    if not settings.response_base_url.startswith("https://"):
        app.err.print(
            f"warning: response_base_url {settings.response_base_url} is not https; "
            "mailbox providers only honour https one-click links"
        )
    return unsubscribe.headers(token, settings.response_base_url, settings.response_domain)


@unsubscribe_group.command("header")
@click.argument("address")
@click.option("--list", "list_name", required=True, help="The list the message is sent to.")
@pass_app
def header(app: AppContext, address: str, list_name: str) -> None:
    """Print List-Unsubscribe and List-Unsubscribe-Post for ADDRESS on a list.

    The token in them is opaque (no address in clear), never expires, and is
    answered by 'scrubber listen' at <response_base_url>/u/TOKEN and
    unsubscribe-TOKEN@<response_domain>.

    \b
    Example:
      scrubber unsubscribe header jane@example.com --list newsletter
    """
    for name, value in _fields(app, address, list_name).items():
        click.echo(f"{name}: {value}")


@unsubscribe_group.command("stamp")
@click.option("--list", "list_name", required=True, help="The list the message is sent to.")
@click.option("--to", "to", help="The recipient (default: the message's one To address).")
@click.option(
    "--dkim-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="DKIM-sign with this PEM private key (mode 0600); h= covers both unsubscribe fields.",
)
@click.option("--dkim-selector", default="scrubber", show_default=True)
@click.option("--dkim-domain", help="The d= domain (default: the From address's domain).")
@pass_app
def stamp(
    app: AppContext,
    list_name: str,
    to: str | None,
    dkim_key: Path | None,
    dkim_selector: str,
    dkim_domain: str | None,
) -> None:
    """Read an RFC 5322 message on stdin, write it with the unsubscribe headers added.

    For use as a mailer filter: the message is otherwise left byte for byte.

    \b
    Example:
      scrubber unsubscribe stamp --list newsletter < message.eml | sendmail -t
      scrubber unsubscribe stamp --list newsletter --dkim-key dkim.pem --dkim-domain example.com
    """
    message = sys.stdin.buffer.read()
    fields = _fields(app, to or unsubscribe.recipient(message), list_name)
    key = None
    if dkim_key is not None:
        domain = dkim_domain or unsubscribe.sender_domain(message)
        key = unsubscribe.DkimKey.load(dkim_key, dkim_selector, domain)
    sys.stdout.buffer.write(unsubscribe.stamp(message, fields, key))


COMMANDS: list[click.Command] = [unsubscribe_group]
