"""scrubber init."""

from __future__ import annotations

from pathlib import Path

import click

from scrubber.cli.context import AppContext, pass_app
from scrubber.config import Settings
from scrubber.private import redact_url
from scrubber.workspace import init_workspace, open_store


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
@pass_app
def init(app: AppContext, /, directory: Path, upgrade: bool, **options: str | None) -> None:
    """Create a workspace: scrubber.toml, an Ed25519 key pair and a database.

    Refuses to touch an existing workspace (a key is never overwritten);
    with --upgrade, migrates an existing workspace's database instead.

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
    workspace = init_workspace(directory, Settings.from_mapping(given))
    app.out.print(f"Created workspace [bold]{workspace.root}[/]")
    app.out.print(f"  config    {workspace.config_path}")
    app.out.print(f"  key       {workspace.path(workspace.settings.private_key)} (mode 0600)")
    app.out.print(f"  database  {redact_url(workspace.settings.database_url)}")
    app.out.print(f"  posts to  {redact_url(workspace.settings.post_server)}")


COMMANDS = [init]
