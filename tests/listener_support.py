"""Helpers for the listener tests: a workspace with a batch, proofs as a responder
computes them, and the listener run as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from scrubber import scheme
from scrubber.batch.create import create_batch, request_from_settings
from scrubber.hashing import ThreadExecutor
from scrubber.lists import import_files
from scrubber.store import Store
from scrubber.store.models import Batch, Ping, PingTally
from scrubber.workspace import Workspace, load_key, open_store


def make_batch(
    ws: Workspace, addresses: list[str], list_name: str = "customers", *, protocol: int = 2
) -> Batch:
    """Import ``addresses`` into a list and create a batch of it."""
    source = ws.root / f"{list_name}.txt"
    source.write_text("\n".join(addresses) + "\n", encoding="utf-8")
    store = open_store(ws)
    executor = ThreadExecutor(2)
    try:
        import_files(store, list_name, [source], rejects_path=ws.root / "rejects.csv")
        request = request_from_settings(ws.settings, [list_name], protocol=protocol)
        return create_batch(store, ws.settings, load_key(ws), request, executor).batch
    finally:
        executor.close()
        store.close()


def proof_for(address: str, batch: Batch) -> str:
    """The proof a registrant of ``address`` sends, computed from the scheme alone."""
    params = batch.params
    digest = scheme.digest(scheme.canonicalize(address), batch.salt, params)
    return scheme.b64url(digest.proof)


def stored_outcomes(store: Store, batch_id: str | None = None) -> Counter[tuple[str, str]]:
    """(channel, outcome) -> proofs, as the database holds them: accepted (and,
    in older databases, any) proofs as pings rows, the worthless ones tallied."""
    counts: Counter[tuple[str, str]] = Counter()
    pings = select(Ping.channel, Ping.outcome, func.count()).group_by(Ping.channel, Ping.outcome)
    tallies = select(
        PingTally.channel, func.sum(PingTally.invalid), func.sum(PingTally.duplicate)
    ).group_by(PingTally.channel)
    if batch_id is not None:
        pings = pings.where(Ping.batch_id == batch_id)
        tallies = tallies.where(PingTally.batch_id == batch_id)
    with store.read() as session:
        for channel, outcome, n in session.execute(pings):
            counts[channel, outcome] += int(n)
        for channel, invalid, duplicate in session.execute(tallies):
            counts[channel, "invalid"] += int(invalid)
            counts[channel, "duplicate"] += int(duplicate)
    return +counts  # zero counts dropped


def by_outcome(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for (_channel, outcome), n in counts.items():
        total[outcome] += n
    return dict(total)


_LISTENING = re.compile(r"event=listening channel=(\w+) address=([\d.]+):(\d+)")


@dataclass
class Listener:
    """`scrubber listen` as a subprocess; ports read from its startup log."""

    proc: subprocess.Popen[str]
    ports: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def smtp_port(self) -> int:
        return self.ports["smtp"]

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code

    _reader: threading.Thread = field(init=False)


def start_listener(
    ws: Path,
    *extra: str,
    channels: tuple[str, ...] = ("smtp", "http"),
    prefix: tuple[str, ...] = (),
) -> Listener:
    """``prefix``: a command to run the listener under (``prlimit ...``)."""
    args = [*prefix, sys.executable, "-m", "scrubber", "--workspace", str(ws), "listen"]
    args += ["--smtp", "127.0.0.1:0" if "smtp" in channels else "off"]
    args += ["--http", "127.0.0.1:0" if "http" in channels else "off"]
    env = {**os.environ}
    env.pop("SCRUBBER_WORKSPACE", None)
    proc = subprocess.Popen(
        [*args, *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    listener = Listener(proc)
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            listener.lines.append(line)
            found = _LISTENING.search(line)
            if found:
                listener.ports[found.group(1)] = int(found.group(3))
            if "event=ready" in line:
                ready.set()
        ready.set()

    listener._reader = threading.Thread(target=read, daemon=True)
    listener._reader.start()
    if not ready.wait(60) or proc.poll() is not None:
        proc.kill()
        raise AssertionError(f"listener did not start:\n{listener.log()}")
    return listener


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def ping_json(listener: Listener, token: str, proofs: list[str]) -> tuple[int, Any]:
    body = json.dumps({"proofs": proofs}).encode()
    return post(f"{listener.http}/dni/v1/ping/{token}", body)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
