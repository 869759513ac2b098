"""scrubber key show | key rotate: the operator key pair."""

from __future__ import annotations

import click

from scrubber import keys
from scrubber.cli.context import AppContext, pass_app, print_json


@click.group("key")
def key() -> None:
    """The operator's Ed25519 key: show it, rotate it.

    \b
    Examples:
      scrubber key show
      scrubber key rotate
    """


@key.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Print the current public key and fingerprint, and the retired ones.

    \b
    Example:
      scrubber key show
    """
    workspace = app.workspace
    current = keys.read_public(workspace.path(workspace.settings.public_key))
    retired = keys.retired_public_keys(workspace.path(workspace.settings.private_key))
    if as_json:
        print_json(
            {
                "current": {
                    "key": keys.encode_public(current),
                    "fingerprint": keys.fingerprint(current),
                },
                "retired": [
                    {"key": keys.encode_public(old), "fingerprint": keys.fingerprint(old)}
                    for old in retired
                ],
            }
        )
        return
    app.out.print(f"current  {keys.encode_public(current)}  {keys.fingerprint(current)}")
    for old in retired:
        app.out.print(f"retired  {keys.encode_public(old)}  {keys.fingerprint(old)}")


@key.command("rotate")
@pass_app
def rotate(app: AppContext) -> None:
    """Make a new operator key; the old pair moves to keys/retired/.

    New batches and reports are signed with the new key. Reports signed with
    a retired key still verify in this workspace (docs/security.md).

    \b
    Example:
      scrubber key rotate
    """
    workspace = app.workspace
    private = workspace.path(workspace.settings.private_key)
    old, new = keys.rotate(private, workspace.path(workspace.settings.public_key))
    app.out.print(f"rotated: new key {new.fingerprint}; retired {old} to {keys.RETIRED}/")


COMMANDS: list[click.Command] = [key]
