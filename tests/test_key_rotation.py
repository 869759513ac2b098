"""scrubber key rotate: a new key, the old one retired, old reports still verify."""

from __future__ import annotations

import json
import stat
import urllib.request
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from scrubber.config import Settings
from scrubber.keys import decode_public, fingerprint
from scrubber.responder.ping import PingConfig
from scrubber.responder.run import run_once
from scrubber.responder.store import ResponderStore, add_addresses
from scrubber.store.models import Batch, Ping
from scrubber.store.types import utcnow
from scrubber.transport.spool import SpoolSource
from scrubber.workspace import Workspace, init_workspace, load_workspace, open_store
from tests.listener_support import make_batch, start_listener
from tests.report_support import Seeded
from tests.support import free_port, run_cli

ALICE = "alice@example.org"


def test_rotate_keeps_old_reports_verifying(seeded: Seeded, tmp_path: Path) -> None:
    root = seeded.workspace.root
    before = tmp_path / "before.json"
    assert run_cli("report", seeded.batch_id, "-o", str(before), workspace=root).returncode == 0
    old_pub = (root / "keys" / "operator.pub").read_text().strip()
    rotated = run_cli("key", "rotate", workspace=root)
    assert rotated.returncode == 0, rotated.stderr
    new_pub = (root / "keys" / "operator.pub").read_text().strip()
    assert new_pub != old_pub
    retired = list((root / "keys" / "retired").iterdir())
    assert sorted(p.suffix for p in retired) == [".key", ".pub"]
    key_file = next(p for p in retired if p.suffix == ".key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    shown = run_cli("key", "show", workspace=root).stdout
    assert f"current  {new_pub}" in shown and f"retired  {old_pub}" in shown
    old = run_cli("report", "verify", str(before), workspace=root)
    assert old.returncode == 0, old.stderr
    assert "signed by the workspace's retired key" in old.stdout
    after = tmp_path / "after.json"
    assert run_cli("report", seeded.batch_id, "-o", str(after), workspace=root).returncode == 0
    new = run_cli("report", "verify", str(after), workspace=root)
    assert new.returncode == 0 and "signed by the workspace key" in new.stdout
    outside = run_cli("report", "verify", str(before), "--key", new_pub)
    assert outside.returncode == 4


def rotate(ws: Workspace) -> str:
    """``scrubber key rotate``; returns the key it retired (base64)."""
    before = (ws.root / "keys" / "operator.pub").read_text().strip()
    rotated = run_cli("key", "rotate", workspace=ws.root)
    assert rotated.returncode == 0, rotated.stderr
    return before


def test_a_batch_signed_before_a_rotation_still_binds_and_its_pings_count(tmp_path: Path) -> None:
    port = free_port()
    init_workspace(tmp_path / "ws", Settings(response_base_url=f"http://127.0.0.1:{port}"))
    ws = load_workspace(tmp_path / "ws")
    expired = make_batch(ws, ["carol@example.com"], list_name="early")
    with open_store(ws) as store, store.write() as session:
        session.execute(
            update(Batch)
            .where(Batch.id == expired.id)
            .values(expires_at=utcnow() - timedelta(days=1))
        )
    first = rotate(ws)  # its only batch has expired: no longer served
    old = make_batch(ws, [ALICE, "bob@example.com"])
    spool = tmp_path / "spool"
    posted = run_cli("batch", "post", old.id, "--server", f"spool:{spool}", workspace=ws.root)
    assert posted.returncode == 0, posted.stderr
    second = rotate(ws)
    current = (ws.root / "keys" / "operator.pub").read_text().strip()
    assert old.key_public == second and expired.key_public == first
    listener = start_listener(ws.root, "--http", f"127.0.0.1:{port}", channels=("http",))
    try:
        with urllib.request.urlopen(f"{listener.http}/dni/v1/key", timeout=10) as answer:
            served = json.loads(answer.read())
        with ResponderStore.open(tmp_path / "responder.db") as responder:
            add_addresses(responder, [ALICE])
            config = PingConfig(retries=0, use_smtp=False, allow_private_http=True)
            result = run_once(responder, lambda: SpoolSource(spool), ping_config=config)
    finally:
        assert listener.stop() == 0, listener.log()
    # v1 responders read key/fingerprint: still the current key.
    assert served["key"] == current and served["fingerprint"] == fingerprint(decode_public(current))
    (retired,) = served["retired"]
    assert retired["key"] == second and first not in json.dumps(served)
    assert retired["fingerprint"] == fingerprint(decode_public(second))
    assert retired["until"] == old.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result.scan is not None and result.scan.matches == 1
    assert result.pings.delivered == 1 and result.pings.refused == 0, result.pings.failures
    with open_store(ws) as store, store.read() as session:
        assert list(session.scalars(select(Ping.outcome))) == ["accepted"]
