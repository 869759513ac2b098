"""The whole opt-out loop over a real INN2 server.

An operator imports 10,000 addresses, 100 of which a registrant protects
under other spellings; the batch (several parts, by a test-only part size)
is posted to INN; `scrubber listen` runs as a subprocess; `scrubber
responder scan` reads the group, fetches only the parts it needs, checks
the key binding and pings. Then: exactly those 100 are suppressed, export
and the next batch lack them, a second scan sends nothing, a forged batch
pointing at the listener gets no ping, and a sender key that re-lists
addresses it was already pinged for draws escalating pings.
"""

from __future__ import annotations

import json
import random
import shutil
import unicodedata
import warnings
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scrubber import article, scheme
from scrubber.batch.create import create_batch, request_from_settings
from scrubber.config import Settings
from scrubber.hashing import ThreadExecutor
from scrubber.keys import OperatorKey
from scrubber.responder.store import ResponderStore, set_mark
from scrubber.store.models import Address, Batch, BatchEntry, BatchPart, Ping, Suppression
from scrubber.transport.nntp import NntpSource
from scrubber.workspace import Workspace, init_workspace, load_key, load_workspace, open_store
from tests.listener_support import Listener, by_outcome, start_listener, stored_outcomes
from tests.responder_support import BatchSpec, batch_articles
from tests.support import free_port, require_service, run_cli

pytestmark = [pytest.mark.inn, pytest.mark.slow]

GROUP = "alt.dni.batches"
LIST_SIZE = 10_000


def protected_pairs() -> list[tuple[str, str]]:
    """(spelling the registrant gives, spelling on the operator's list): 100 pairs."""
    pairs = []
    for i in range(20):
        pairs.append((f"case{i}@shop.example", f"CaSe{i}@Shop.EXAMPLE"))
        pairs.append((f"plus{i}@shop.example", f"plus{i}+deals-{i}@shop.example"))
        pairs.append((f"firstlast{i}@gmail.com", f"First.Last.{i}@GoogleMail.com"))
        nfc = unicodedata.normalize("NFC", f"josé{i}@shop.example")
        pairs.append((nfc, unicodedata.normalize("NFD", f"JOSÉ{i}@shop.example")))
        pairs.append((f"reader{i}@xn--bcher-kva.example", f"reader{i}@Bücher.example"))
    return pairs


def make_list(path: Path, pairs: list[tuple[str, str]], size: int) -> None:
    rng = random.Random(6)
    others = [f"member{n}.{rng.randrange(10**9)}@list{n % 97}.example" for n in range(size)]
    lines = others[: size - len(pairs)] + [listed for _, listed in pairs]
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def new_workspace(root: Path, port: int) -> Workspace:
    settings = Settings(
        newsgroup=GROUP, response_base_url=f"http://127.0.0.1:{port}", http_port=port
    )
    init_workspace(root, settings)
    return load_workspace(root)


def create_small_parts(ws: Workspace, monkeypatch: pytest.MonkeyPatch, part_bytes: int) -> str:
    """`batch create` in-process with a test-only part size, so the batch has several parts."""
    monkeypatch.setattr(article, "MAX_PART_BYTES", part_bytes)
    store, executor = open_store(ws), ThreadExecutor(2)
    try:
        request = request_from_settings(ws.settings, ["customers"])
        return create_batch(store, ws.settings, load_key(ws), request, executor).batch.id
    finally:
        executor.close()
        store.close()
        monkeypatch.undo()


def cli_ok(*args: str, **kwargs: Any) -> str:
    result = run_cli(*args, **kwargs)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


def scan(server: str, env: dict[str, str], *extra: str) -> dict[str, Any]:
    out = cli_ok(
        "responder", "scan", "--server", server, "--group", GROUP, "--json", "--ping-delay", "0",
        "--allow-private",
        *extra, env=env,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    assert result["error"] is None
    return result


def start_from_now(db: Path, server: str) -> None:
    """A registrant who starts watching now: the mark goes to the group's end,
    so articles other tests posted earlier are not part of this test's counts."""
    source = NntpSource(server, GROUP)
    try:
        _, mark = source.overview(None)
    finally:
        source.close()
    store = ResponderStore.open(db)
    try:
        if mark is not None:
            set_mark(store, source.name, mark)
    finally:
        store.close()


def post_raw(server: str, articles: list[bytes]) -> None:
    from scrubber.transport.nntp import nntplib

    host_port = server.removeprefix("nntp://").split(":")
    with warnings.catch_warnings():
        conn = nntplib.NNTP(host_port[0], int(host_port[1]), readermode=True)
    try:
        for raw in articles:
            conn.post(raw.splitlines())
    finally:
        conn.quit()


def suppressed(ws: Workspace) -> set[str]:
    with open_store(ws) as store, store.read() as session:
        query = select(Address.canonical).join(Suppression, Suppression.address_id == Address.id)
        return set(session.scalars(query))


def test_opt_out_loop_over_inn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = require_service("SCRUBBER_TEST_NNTP", "INN2 news server")
    pairs = protected_pairs()
    protected = {scheme.canonicalize(given) for given, _ in pairs}
    assert len(protected) == 100
    assert all(scheme.canonicalize(listed) in protected for _, listed in pairs)

    db = tmp_path / "responder.db"
    env = {"SCRUBBER_RESPONDER_DB": str(db)}
    (tmp_path / "mine.txt").write_text("\n".join(g for g, _ in pairs) + "\n", encoding="utf-8")
    assert "protected 100 new" in cli_ok(
        "responder", "add", "--file", str(tmp_path / "mine.txt"), env=env
    )
    start_from_now(db, server)

    port = free_port()
    ws = new_workspace(tmp_path / "ws", port)
    make_list(tmp_path / "customers.txt", pairs, LIST_SIZE)
    cli_ok("list", "import", "customers", str(tmp_path / "customers.txt"), workspace=ws.root)
    batch_id = create_small_parts(ws, monkeypatch, 6_000)
    with open_store(ws) as store, store.read() as session:
        parts = list(session.scalars(select(BatchPart).where(BatchPart.batch_id == batch_id)))
        tags = {
            t
            for t, c in session.execute(
                select(BatchEntry.tag, Address.canonical)
                .join(Address, Address.id == BatchEntry.address_id)
                .where(BatchEntry.batch_id == batch_id)
            )
            if c in protected
        }
    assert len(parts) >= 4 and len(tags) == 100
    holding = {p.part for p in parts if any(p.first_tag <= t <= p.last_tag for t in tags)}
    cli_ok("batch", "post", batch_id, "--server", server, workspace=ws.root)

    listener = start_listener(ws.root, "--http", f"127.0.0.1:{port}")
    try:
        first = scan(server, env)
        assert first["scan"]["matches"] == 100
        assert first["scan"]["bodies"][batch_id] <= 1 + len(holding)
        assert first["scan"]["bodies"][batch_id] == len(holding | {1})
        assert first["pings"]["delivered"] == 100 and first["pings"]["pending"] == 0

        # Exactly the 100 are suppressed; export and the next batch lack them.
        assert suppressed(ws) == protected
        exported = cli_ok("list", "export", "customers", workspace=ws.root).splitlines()
        assert len(exported) == LIST_SIZE - 100
        assert not {scheme.try_canonicalize(line) for line in exported} & protected
        cli_ok("batch", "create", "customers", workspace=ws.root)
        with open_store(ws) as store, store.read() as session:
            second_id = session.scalar(select(Batch.id).where(Batch.id != batch_id))
            listed = set(
                session.scalars(
                    select(Address.canonical)
                    .join(BatchEntry, BatchEntry.address_id == Address.id)
                    .where(BatchEntry.batch_id == second_id)
                )
            )
        assert len(listed) == LIST_SIZE - 100 and not listed & protected
        assert second_id is not None
        cli_ok("batch", "post", second_id, "--server", server, workspace=ws.root)

        again = scan(server, env)
        assert again["scan"]["matches"] == 0
        assert again["pings"]["requests"] == 0 and again["pings"]["delivered"] == 0

        # A forged batch (rogue key) naming the real listener: no ping reaches it.
        rogue = BatchSpec(OperatorKey.generate(), f"http://127.0.0.1:{port}")
        rogue.params = scheme.Params(t=2, m=1024, p=1, tag_length=8)
        post_raw(server, batch_articles(rogue, [g for g, _ in pairs[:10]], parts=2))
        forged = scan(server, env)
        assert forged["scan"]["matches"] == 10, forged
        assert forged["pings"]["delivered"] == 0 and forged["pings"]["refused"] == 10
        assert any("key binding failed" in f for f in forged["pings"]["failures"])
        with open_store(ws) as store, store.read() as session:
            pings = list(session.scalars(select(Ping)))
        assert len(pings) == 100 and {p.outcome for p in pings} == {"accepted"}
        rows = {
            r["fingerprint"]: r
            for r in json.loads(cli_ok("responder", "report", "--json", env=env))
        }
        operator = rows[load_key(ws).fingerprint]
        assert operator["outcomes"] == {"accepted": 100} and operator["escalations"] == 0
        assert operator["batches"] == 2 and operator["pings_sent"] == 100
        forger = rows[rogue.key.fingerprint]
        assert forger["forged_batches"] == 1 and forger["pings_sent"] == 0
    finally:
        assert listener.stop() == 0

    _second_key_relisting_escalates(tmp_path, server, env, pairs)


def _second_key_relisting_escalates(
    tmp_path: Path, server: str, env: dict[str, str], pairs: list[tuple[str, str]]
) -> None:
    """Operator 2 is pinged once per address; it then loses its suppressions
    (a fresh database under the same key) and re-lists them: 2 pings each."""
    few = pairs[:20]
    runs: list[dict[str, Any]] = []
    ws2: Workspace | None = None
    for round_ in (1, 2):
        port = free_port()
        ws = new_workspace(tmp_path / f"op2-{round_}", port)
        if ws2 is not None:  # same key as before, empty suppression list
            for name in ("private_key", "public_key"):
                source = ws2.path(getattr(ws2.settings, name))
                shutil.copyfile(source, ws.path(getattr(ws.settings, name)))
        ws2 = ws
        make_list(tmp_path / f"op2-{round_}.txt", few, 300)
        cli_ok(
            "list", "import", "customers", str(tmp_path / f"op2-{round_}.txt"), workspace=ws.root
        )
        cli_ok("batch", "create", "customers", workspace=ws.root)
        with open_store(ws) as store, store.read() as session:
            batch_id = session.scalars(select(Batch.id)).one()
        cli_ok("batch", "post", batch_id, "--server", server, workspace=ws.root)
        listener: Listener = start_listener(ws.root, "--http", f"127.0.0.1:{port}")
        try:
            runs.append(scan(server, env))
            with open_store(ws) as store:
                outcomes = by_outcome(stored_outcomes(store))
        finally:
            assert listener.stop() == 0
        expected = 20 * round_  # 1 ping each, then 2 each (the second a duplicate)
        assert sum(outcomes.values()) == expected
        assert outcomes["accepted"] == 20
    assert [r["scan"]["escalations"] for r in runs] == [0, 20]
    assert [r["pings"]["delivered"] for r in runs] == [20, 40]
    assert ws2 is not None
    fingerprint = load_key(ws2).fingerprint
    report = json.loads(cli_ok("responder", "report", "--json", env=env))
    row = next(r for r in report if r["fingerprint"] == fingerprint)
    assert row["escalations"] == 20 and row["pings_sent"] == 60
    assert row["outcomes"] == {"accepted": 40, "duplicate": 20}
    assert len(row["relisted"]) == 20
    text = cli_ok("responder", "report", env=env)
    assert f"compliance failure: key {fingerprint} re-listed 20" in text
