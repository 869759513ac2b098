"""What every command needs: the workspace, its store, consoles, progress bars."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from scrubber.store import Store
from scrubber.workspace import Workspace, find_workspace, open_store

# Seconds between progress lines off a terminal (the variable is for tests).
PROGRESS_EVERY = float(os.environ.get("SCRUBBER_PROGRESS_EVERY", "5"))


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

    def waiting(self, what: str) -> None:
        """Say on a terminal what a network command waits for ("connecting to
        X ..."), before it waits; off one, output stays as scripts expect it."""
        if self.err.is_terminal:
            self.err.print(f"{what} ...", soft_wrap=True)

    @contextlib.contextmanager
    def progress(
        self, description: str, total: float | None, *, unit: str = "items"
    ) -> Iterator[Ticker]:
        """Progress on stderr: a rich bar with total and time left on a terminal,
        else a line every few seconds with rate and time left (cron, logs)."""
        if not self.err.is_terminal:
            lines = _LineReporter(self.err, description, total, unit)
            yield Ticker(lines)
            lines.finish()
            return
        columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
        if unit == "bytes":
            columns += [TaskProgressColumn(), TransferSpeedColumn()]
        else:
            columns += [MofNCompleteColumn()]
        columns.append(TimeRemainingColumn())
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield Ticker(_BarReporter(bar, task))


class _Reporter(Protocol):
    def advance(self, n: int) -> None: ...
    def set_total(self, total: int) -> None: ...


@dataclass
class Ticker:
    """What a progress context yields: call it with work done; ``set_total`` once known."""

    reporter: _Reporter

    def __call__(self, n: int) -> None:
        self.reporter.advance(n)

    def set_total(self, total: int) -> None:
        self.reporter.set_total(total)


@dataclass
class _BarReporter:
    bar: Progress
    task: TaskID

    def advance(self, n: int) -> None:
        self.bar.advance(self.task, n)

    def set_total(self, total: int) -> None:
        self.bar.update(self.task, total=total)


@dataclass
class _LineReporter:
    """Off a terminal: one plain line every PROGRESS_EVERY seconds, no control codes."""

    console: Console
    description: str
    total: float | None
    unit: str
    done: float = 0
    started: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            self.console.print(self.line(now), soft_wrap=True)

    def set_total(self, total: int) -> None:
        self.total = total

    def finish(self) -> None:
        if time.monotonic() - self.started >= PROGRESS_EVERY:
            self.console.print(self.line(time.monotonic()), soft_wrap=True)

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        unit = "MB" if self.unit == "bytes" else self.unit
        scale = 1e6 if self.unit == "bytes" else 1
        text = f"{self.description}: {self.done / scale:,.0f}"
        if self.total:
            text += f"/{self.total / scale:,.0f} {unit} ({100 * self.done / self.total:.0f}%)"
        else:
            text += f" {unit}"
        text += f", {rate / scale:,.1f} {unit}/s"
        if self.total and rate > 0:
            text += f", {max(self.total - self.done, 0) / rate:,.0f} s left"
        return text


pass_app = click.make_pass_decorator(AppContext)


def folded(table: Table) -> Table:
    """Cells wrap or fold at any width, never cut with an ellipsis: ids,
    list names, file names and addresses stay whole (call once the columns exist)."""
    for column in table.columns:
        column.overflow = "fold"
    return table


def print_table(
    app: AppContext, columns: Sequence[str], rows: Iterable[Sequence[str]], **options: Any
) -> None:
    """One row per item under ``columns`` on stdout, cells folded (``folded``);
    ``options`` are rich's ``Table`` options (``title``)."""
    table = folded(Table(*columns, **options))
    for row in rows:
        table.add_row(*row)
    app.out.print(table)


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
