"""scrubber demo: the whole pipeline on embedded defaults, in a scratch workspace.

Every stage uses the same library code as the real commands: the list is
imported and hashed, the batch is posted to the spool transport, the real
listener runs as a child process on free local ports, and the reference
responder reads the spool and pings it over HTTP.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from scrubber import hashing, lists, scheme
from scrubber.batch import create as batch_create
from scrubber.batch import post as batch_post
from scrubber.config import Settings
from scrubber.errors import ListenerError
from scrubber.private import touch_private
from scrubber.report import build, formats, sign
from scrubber.responder import store as responder_store
from scrubber.responder.ping import PingConfig
from scrubber.responder.run import run_once
from scrubber.store import Store
from scrubber.store.models import Suppression
from scrubber.transport import open_transport, server_name
from scrubber.transport.spool import SpoolSource
from scrubber.workspace import Workspace, init_workspace, load_key, open_store

SAMPLE = Path(__file__).resolve().parent.parent / "sample_lists"
LIST_NAME = "customers"
REGISTRANTS = 25
LISTENER_START_SECONDS = 30


@dataclass(frozen=True)
class DemoStep:
    title: str
    detail: str


@dataclass(frozen=True)
class DemoResult:
    workspace: Workspace
    batch_id: str
    suppressed: int
    text_report: Path
    html_report: Path


Say = Callable[[DemoStep], None]


def run_demo(root: Path, sample: Path, say: Say, reports_dir: Path | None = None) -> DemoResult:
    """Run the pipeline in a new workspace at ``root``; report each step via ``say``."""
    http_port, smtp_port = _free_port(), _free_port()
    settings = Settings(
        http_port=http_port,
        smtp_port=smtp_port,
        response_base_url=f"http://127.0.0.1:{http_port}",
    )
    workspace = init_workspace(root, settings)
    say(DemoStep("init", f"workspace {workspace.root}, new Ed25519 key, SQLite database"))
    with open_store(workspace) as store:
        registrants = _import(store, root, sample, say)
        batch_id = _create_and_post(workspace, store, say)
        with _listener(workspace, say):
            _respond(workspace, root, registrants, say)
        suppressed = _count_suppressed(store)
        say(
            DemoStep(
                "suppressed",
                f"{suppressed} addresses removed from every list; "
                f"export now has {sum(1 for _ in lists.iter_export(store, LIST_NAME)):,}",
            )
        )
        text_path, html_path = _reports(workspace, store, batch_id, reports_dir or root / "reports")
        say(DemoStep("report", "signed compliance report written as text and HTML"))
    return DemoResult(workspace, batch_id, suppressed, text_path, html_path)


def _import(store: Store, root: Path, sample: Path, say: Say) -> list[str]:
    summary = lists.import_files(
        store, LIST_NAME, [sample], rejects_path=root / "rejects" / f"{LIST_NAME}.csv"
    )
    say(
        DemoStep(
            "import",
            f"{sample.name}: {summary.lines:,} lines, {summary.added:,} "
            f"addresses, {summary.folded:,} duplicates folded, {summary.rejected:,} rejected",
        )
    )
    # Registrants protect addresses that are on the list, spelled their own way.
    picked = list(itertools.islice(lists.iter_export(store, LIST_NAME), 0, None, 97))
    registrants = [_respell(a) for a in picked[:REGISTRANTS]]
    return registrants


def _respell(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local.upper()}+dni@{domain.upper()}" if "+" not in local else address.upper()


def _create_and_post(workspace: Workspace, store: Store, say: Say) -> str:
    settings = workspace.settings
    executor = hashing.ThreadExecutor()
    try:
        created = batch_create.create_batch(
            store,
            settings,
            load_key(workspace),
            batch_create.request_from_settings(settings, [LIST_NAME]),
            executor,
        )
    finally:
        executor.close()
    batch = created.batch
    say(
        DemoStep(
            "batch",
            f"{batch.id}: {batch.count:,} addresses hashed "
            f"(Argon2id t={batch.t} m={batch.m} p={batch.p}), {batch.parts_total} part(s)",
        )
    )
    server = server_name(settings.post_server, base=workspace.root)
    work = batch_post.pending(store, batch.id, server)
    summary = batch_post.post_batch(
        store,
        work,
        load_key(workspace),
        lambda: open_transport(
            settings.post_server, newsgroup=batch.newsgroup, base=workspace.root
        ),
    )
    say(DemoStep("post", f"{summary.posted} article(s) written to {summary.server}"))
    return batch.id


@contextlib.contextmanager
def _listener(workspace: Workspace, say: Say) -> Iterator[None]:
    settings = workspace.settings
    log_path = workspace.root / "listener.log"
    touch_private(log_path)
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "scrubber", "--workspace", str(workspace.root), "listen"],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        try:
            _wait_healthy(f"http://{settings.http_host}:{settings.http_port}/healthz", child)
            say(
                DemoStep(
                    "listen",
                    f"HTTP {settings.http_host}:{settings.http_port}, "
                    f"SMTP {settings.smtp_host}:{settings.smtp_port} (log {log_path})",
                )
            )
            yield
        finally:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _wait_healthy(url: str, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + LISTENER_START_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise ListenerError(f"the listener exited with status {child.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=1) as answer,  # noqa: S310 - a local URL
        ):
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise ListenerError(f"the listener did not answer {url} within {LISTENER_START_SECONDS} s")


def _respond(workspace: Workspace, root: Path, registrants: list[str], say: Say) -> None:
    spool = workspace.spool_dir
    assert spool is not None, "the demo posts to the spool transport"
    store = responder_store.ResponderStore.open(root / "responder" / "responder.db")
    try:
        added = responder_store.add_addresses(store, registrants)
        example = scheme.mask(registrants[0])
        say(
            DemoStep(
                "responder",
                f"{len(added.added)} registrants protect their own addresses "
                f"(spelled their way, e.g. {example})",
            )
        )
        # The demo's listener is on loopback, where a real batch may not send a responder.
        local = PingConfig(allow_private_http=True)
        group = workspace.settings.newsgroup
        result = run_once(store, lambda: SpoolSource(spool, group), ping_config=local)
    finally:
        store.close()
    scanned = result.scan
    fetched = scanned.bodies_fetched if scanned is not None else 0
    matches = scanned.matches if scanned is not None else 0
    say(
        DemoStep(
            "ping",
            f"read {fetched} article body(ies), found {matches} protected "
            f"address(es); {result.pings.delivered} proof(s) acknowledged by the listener",
        )
    )


def _count_suppressed(store: Store) -> int:
    with store.read() as session:
        return int(session.scalar(select(func.count()).select_from(Suppression)) or 0)


def _reports(workspace: Workspace, store: Store, batch_id: str, out: Path) -> tuple[Path, Path]:
    document = sign.sign_report(build.build_report(store, batch_id), load_key(workspace))
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / f"{batch_id}.txt", out / f"{batch_id}.html")
    formats.write_file(paths[0], formats.render(document, "text"))
    formats.write_file(paths[1], formats.render(document, "html"))
    return paths


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
