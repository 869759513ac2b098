"""The workspace: finding, creating and opening it (config file, key pair, database).

A workspace is a directory holding ``scrubber.toml``, the operator's Ed25519
key pair and (by default) the SQLite database and the article spool. Paths in
the file are relative to the workspace.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from scrubber.config import CONFIG_NAME, Settings
from scrubber.errors import ConfigError, WorkspaceError
from scrubber.keys import OperatorKey
from scrubber.private import private_dir, write_private
from scrubber.store import Store
from scrubber.store.types import utcnow

ENV_WORKSPACE = "SCRUBBER_WORKSPACE"


@dataclass(frozen=True)
class Workspace:
    """A located workspace: its root directory and its settings."""

    root: Path
    settings: Settings

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path anchored at the root."""
        url = self.settings.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            rest = url[len(prefix) :]
            if rest and rest != ":memory:":
                return prefix + str(self.root / rest)
        return url

    def rejects_path(self, list_name: str, now: datetime | None = None) -> Path:
        """Where an import into ``list_name`` puts its rejected lines unless told:
        ``rejects/NAME-<UTC time>.csv``, the name made safe for a file name."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in list_name)
        now = now or utcnow()
        return self.root / "rejects" / f"{safe}-{now:%Y%m%dT%H%M%S}.csv"

    @property
    def spool_dir(self) -> Path | None:
        server = self.settings.post_server
        return self.path(server[len("spool:") :]) if server.startswith("spool:") else None


def load_workspace(root: Path) -> Workspace:
    """Read ``root/scrubber.toml``; raise a one-line error if it is not usable."""
    config = root / CONFIG_NAME
    try:
        raw = config.read_bytes()
    except FileNotFoundError:
        raise WorkspaceError(
            f"no workspace at {root} (no {CONFIG_NAME}); run 'scrubber init' "
            f"or pass --workspace / set {ENV_WORKSPACE}"
        ) from None
    except OSError as exc:
        raise WorkspaceError(f"cannot read {config}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config} is not valid TOML: {exc}") from None
    section = data.get("scrubber")
    if not isinstance(section, dict):
        raise ConfigError(f"{config} has no [scrubber] table")
    return Workspace(root=root.resolve(), settings=Settings.from_mapping(section))


def find_workspace(explicit: Path | None = None) -> Workspace:
    """Find the workspace: ``--workspace``, then $SCRUBBER_WORKSPACE, then cwd."""
    if explicit is not None:
        return load_workspace(explicit)
    env = os.environ.get(ENV_WORKSPACE)
    if env:
        return load_workspace(Path(env))
    return load_workspace(Path.cwd())


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
