"""Creating and opening a workspace: config file, key pair, database."""

from __future__ import annotations

from pathlib import Path

from scrubber.config import CONFIG_NAME, Settings, Workspace, load_workspace
from scrubber.errors import WorkspaceError
from scrubber.keys import OperatorKey
from scrubber.private import private_dir, write_private
from scrubber.store import Store


def refuse_existing(root: Path, settings: Settings) -> None:
    """Raise if ``root`` holds a workspace or a key already (checked before
    anything is asked or written)."""
    if (root / CONFIG_NAME).exists():
        raise WorkspaceError(f"{root} is already a workspace ({CONFIG_NAME} exists)")
    private = Workspace(root=root.resolve(), settings=settings).path(settings.private_key)
    if private.exists():
        raise WorkspaceError(f"{private} exists; refusing to overwrite a key")


def init_workspace(root: Path, settings: Settings | None = None) -> Workspace:
    """Create a workspace in ``root``; refuses if one is there already."""
    settings = settings or Settings()
    refuse_existing(root, settings)
    workspace = Workspace(root=root.resolve(), settings=settings)
    config = root / CONFIG_NAME
    private = workspace.path(settings.private_key)
    try:
        private_dir(root)
    except OSError as exc:
        raise WorkspaceError(f"cannot create workspace in {root}: {exc.strerror}") from None
    # The database first: if its URL is wrong, no key is left behind to
    # block the next 'init' (which never overwrites a key).
    with open_store(workspace, migrate=True):
        pass
    try:
        OperatorKey.generate().write(private, workspace.path(settings.public_key))
    except OSError as exc:
        raise WorkspaceError(f"cannot create workspace in {root}: {exc.strerror}") from None
    spool = workspace.spool_dir
    if spool is not None:
        private_dir(spool)
    # Written last: a workspace only counts as one once everything above exists.
    # 0600: the server URL may hold the news server's password.
    write_private(config, settings.to_toml())
    return load_workspace(root)


def open_store(workspace: Workspace, *, migrate: bool = False) -> Store:
    store = Store(workspace.database_url)
    if migrate:
        store.migrate()
    else:
        store.require_current_schema()
    return store


def load_key(workspace: Workspace) -> OperatorKey:
    return OperatorKey.load(workspace.path(workspace.settings.private_key))
