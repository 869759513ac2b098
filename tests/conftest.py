"""Shared fixtures: workspaces, the CLI as a user runs it, real services.

Services come from `make services` (scripts/provision-*.sh), which writes
their URLs to .services.env; the Makefile exports them. A test that needs a
service skips when it is absent, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from scrubber.keys import OperatorKey
from scrubber.store import Store
from scrubber.workspace import Workspace, init_workspace

if TYPE_CHECKING:
    from tests.responder_support import SenderEndpoint

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_service(env_var: str, what: str) -> str:
    """The service URL from the environment; skip locally, fail under CI."""
    value = os.environ.get(env_var)
    if value:
        return value
    message = f"{what} not available: set {env_var} (run 'make services')"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(
    *args: str,
    workspace: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CliResult:
    """Run `python -m scrubber ARGS` in a subprocess, as a user would."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("SCRUBBER_WORKSPACE", None)
    command = [sys.executable, "-m", "scrubber"]
    if workspace is not None:
        command += ["--workspace", str(workspace)]
    proc = subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    base = require_service("SCRUBBER_TEST_PG", "PostgreSQL")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"scrubber_t_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A migrated Store on SQLite and one on a real PostgreSQL."""
    url = (
        f"sqlite:///{tmp_path / 'db.sqlite'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    opened = Store(url)
    opened.migrate()
    request.addfinalizer(opened.close)
    return opened


@pytest.fixture
def key() -> OperatorKey:
    """A fresh operator key (the responder tests sign their batches with it)."""
    return OperatorKey.generate()


@pytest.fixture
def sender(key: OperatorKey) -> Iterator[SenderEndpoint]:
    """A stand-in sender's HTTP endpoint serving ``key`` for key binding."""
    from tests.responder_support import SenderEndpoint

    endpoint = SenderEndpoint(key.public_raw).start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """Mount a tmpfs of a given size (bytes); unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()

    def make(size: int) -> Path:
        options = f"size={size},mode=0700"
        made = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            require_service("SCRUBBER_TEST_TMPFS", f"mounting a tmpfs (as root): {made.stderr}")
        return mount

    yield make
    subprocess.run(["umount", "-l", str(mount)], check=False)
