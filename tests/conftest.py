"""Shared fixtures: workspaces, stores (SQLite and a real PostgreSQL), keys,
a sender endpoint. Helpers to import are in tests/support.py.

Services come from `make services` (scripts/provision-*.sh), which writes
their URLs to .services.env; the Makefile exports them. A test that needs a
service skips when it is absent, except under CI=true, where it fails.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from scrubber.keys import OperatorKey
from scrubber.store import Store
from scrubber.workspace import Workspace, init_workspace, open_store
from tests.report_support import TIMELY, Seeded, add_parts, make_batch, make_workspace, record_pings
from tests.support import require_service

if TYPE_CHECKING:
    from tests.responder_support import SenderEndpoint

# Under pytest-xdist (`make pytest` runs `-n 2 --dist loadgroup`), tests that
# share a fixed resource run on one worker, in their usual order:
# - every `inn` test: they post to and scan the same INN2 newsgroups
#   (alt.dni.batches, alt.dni.test), and a scan counts what others posted;
# - every test of a module with a module-scoped fixture (a listener, a dask
#   cluster): one instance, as in a serial run, not one per worker.
# PostgreSQL needs no group: pg_url gives each test its own database.
INN_GROUP = "inn"


def pytest_configure(config: pytest.Config) -> None:
    # A shell without job control starts background jobs (`make test &`, nohup)
    # with SIGINT ignored, and children inherit that: the tests that stop a
    # `scrubber` child with SIGINT would then wait forever. Python's own
    # handler again, here and in every xdist worker, so children get the default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        if item.get_closest_marker("inn"):
            item.add_marker(pytest.mark.xdist_group(INN_GROUP))
        elif _uses_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def _uses_module_fixture(item: pytest.Item) -> bool:
    """Whether ``item`` uses a module- or class-scoped fixture of its own module."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None or getattr(item, "module", None) is None:
        return False
    module_id = item.nodeid.split("::")[0]
    return any(
        d.scope in ("module", "class") and d.baseid.startswith(module_id)
        for defs in info.name2fixturedefs.values()
        for d in defs
    )


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
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()  # even when the drop fails, or the pooled connection warns later


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
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    workspace = make_workspace(tmp_path / "ws")
    data = make_batch(workspace)
    with open_store(workspace) as store:
        record_pings(store, data.batch_id, TIMELY)
        add_parts(store, data.batch_id, posted=2, total=3)
    yield data


@pytest.fixture
def chromium() -> str:
    return require_service("SCRUBBER_TEST_CHROMIUM", "Chromium")


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
