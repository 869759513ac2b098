"""What every command needs: the workspace, its store, consoles, progress bars."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from scrubber.config import Workspace, find_workspace
from scrubber.store import Store
from scrubber.workspace import open_store


@dataclass
class AppContext:
    """Lazily opened workspace and store; one per CLI invocation."""

    workspace_path: Path | None
    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))
    _workspace: Workspace | None = None
    _store: Store | None = None

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = find_workspace(self.workspace_path)
        return self._workspace

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.workspace)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    @contextlib.contextmanager
    def progress(
        self, description: str, total: float | None, *, unit: str = "items"
    ) -> Iterator[Callable[[int], None]]:
        """A rich progress bar on stderr; yields the function that advances it."""
        columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
        if unit == "bytes":
            columns += [TaskProgressColumn(), TransferSpeedColumn()]
        else:
            columns += [MofNCompleteColumn()]
        columns.append(TimeRemainingColumn())
        # No bar when stderr is not a terminal: logs and pipes get no control codes.
        with Progress(
            *columns, console=self.err, transient=True, disable=not self.err.is_terminal
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)


pass_app = click.make_pass_decorator(AppContext)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_json_value, ensure_ascii=False) + "\n")


def _json_value(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def executor_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--executor`` for the commands that hash (see hashing.open_executor)."""
    return click.option(
        "--executor",
        default="threads",
        show_default=True,
        envvar="SCRUBBER_EXECUTOR",
        metavar="threads|processes|tcp://HOST:PORT",
        help=(
            "Where hashing runs: threads (argon2-cffi releases the GIL), "
            "processes, or a Dask scheduler address (scrubber installed on its "
            "workers). Env: SCRUBBER_EXECUTOR."
        ),
    )(command)
