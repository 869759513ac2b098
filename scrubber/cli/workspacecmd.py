"""scrubber init."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from scrubber.cli.context import AppContext, pass_app, print_json
from scrubber.config import Settings, check_base_url, check_response_domain
from scrubber.errors import ScrubberError, UsageError
from scrubber.private import redact_url
from scrubber.workspace import init_workspace, load_key, open_store, refuse_existing

# The values every batch advertises, their option and how a prompt asks for them.
PUBLIC = {
    "response_domain": (
        "--response-domain",
        "Response domain (mail to dni-<token>@DOMAIN reaches your listener)",
        check_response_domain,
    ),
    "response_base_url": (
        "--base-url",
        "Public base URL of the HTTP listener (e.g. https://dni.shop.example)",
        check_base_url,
    ),
}


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--database-url", help="SQLAlchemy URL (default: SQLite file in the workspace).")
@click.option("--newsgroup", help="Group batches are posted to (default alt.dni.batches).")
@click.option(
    "--server", "post_server", help="Where 'batch post' posts: nntp://, nntps:// or spool:DIR."
)
@click.option("--response-domain", help="Domain of the one-time SMTP response addresses.")
@click.option("--base-url", "response_base_url", help="Public base URL of the HTTP listener.")
@click.option("--operator-name", help="Your organisation, as compliance reports name it.")
@click.option(
    "--operator-contact", help="A mailbox or URL for auditors, shown in compliance reports."
)
@click.option(
    "--upgrade", is_flag=True, help="Migrate an existing workspace's database to the newest schema."
)
@click.option("--json", "as_json", is_flag=True, help="Print what was created as JSON.")
@pass_app
def init(
    app: AppContext, /, directory: Path, upgrade: bool, as_json: bool, **options: str | None
) -> None:
    """Create a workspace: scrubber.toml, an Ed25519 key pair and a database.

    Every batch advertises the response domain and base URL to the world:
    without --response-domain and --base-url, init asks for them on a
    terminal and refuses off one. Refuses to touch an existing workspace
    (a key is never overwritten); with --upgrade, migrates an existing
    workspace's database instead.

    \b
    Example:
      scrubber init shop --response-domain dni.shop.example --base-url https://dni.shop.example
    """
    if upgrade:
        app.workspace_path = directory
        with open_store(app.workspace, migrate=True):
            pass
        app.err.print(f"[green]database of {directory} is at the newest schema")
        return
    given = {k: v for k, v in options.items() if v is not None}
    refuse_existing(directory, Settings.from_mapping(given))
    given.update(_public_settings(given))
    workspace = init_workspace(directory, Settings.from_mapping(given))
    settings = workspace.settings
    if as_json:
        key = load_key(workspace)
        print_json(
            {
                "workspace": str(workspace.root),
                "config": str(workspace.config_path),
                "private_key": str(workspace.path(settings.private_key)),
                "public_key": key.public_b64,
                "key_fingerprint": key.fingerprint,
                "database_url": redact_url(settings.database_url),
                "post_server": redact_url(settings.post_server),
                "newsgroup": settings.newsgroup,
                "response_domain": settings.response_domain,
                "response_base_url": settings.response_base_url,
            }
        )
        return
    app.out.print(f"Created workspace [bold]{workspace.root}[/]")
    app.out.print(f"  config    {workspace.config_path}")
    app.out.print(f"  key       {workspace.path(workspace.settings.private_key)} (mode 0600)")
    app.out.print(f"  database  {redact_url(workspace.settings.database_url)}")
    app.out.print(f"  posts to  {redact_url(workspace.settings.post_server)}")
    app.out.print(
        f"  pings to  dni-<token>@{settings.response_domain}, {settings.response_base_url}"
    )


def _public_settings(given: dict[str, str]) -> dict[str, str]:
    """The response domain and base URL: checked if given, asked on a terminal,
    else refused (placeholders would be advertised to the world)."""
    missing = [key for key in PUBLIC if key not in given]
    if missing and not sys.stdin.isatty():
        options = " and ".join(PUBLIC[key][0] for key in missing)
        raise UsageError(
            f"init needs {options}: every batch advertises them "
            "(e.g. --response-domain dni.shop.example --base-url https://dni.shop.example)"
        )
    values: dict[str, str] = {}
    for key, (option, question, check) in PUBLIC.items():
        if key in given:
            values[key] = _checked(check, given[key], option)
        else:
            values[key] = click.prompt(question, value_proc=_for_prompt(check), err=True)
    return values


def _checked(check: Callable[[str], str], value: str, option: str) -> str:
    try:
        return check(value)
    except ScrubberError as error:
        raise UsageError(f"{option}: {error}") from None


def _for_prompt(check: Callable[[str], str]) -> Callable[[str], str]:
    """The check as click's prompt wants it: a bad answer is asked again."""

    def convert(value: str) -> str:
        try:
            return check(value)
        except ScrubberError as error:
            raise click.UsageError(str(error)) from None

    return convert


COMMANDS = [init]
