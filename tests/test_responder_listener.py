"""The responder against the real `scrubber listen`: SMTP fallback when the
HTTP side keeps failing, ending in a real suppression."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from scrubber import scheme
from scrubber.config import Settings
from scrubber.keys import fingerprint
from scrubber.responder.domain import DnsConfig
from scrubber.responder.ping import PingConfig
from scrubber.responder.run import run_once
from scrubber.responder.store import ResponderStore, add_addresses
from scrubber.store.models import Address, Ping, Suppression
from scrubber.transport.spool import SpoolSource
from scrubber.workspace import init_workspace, load_key, load_workspace, open_store
from tests.listener_support import make_batch, start_listener
from tests.net_support import Dnsmasq, dni_record
from tests.responder_support import SenderEndpoint
from tests.support import run_cli


def test_http_failing_falls_back_to_smtp_and_the_listener_suppresses(tmp_path: Path) -> None:
    # The HTTP host serves the operator's real key but answers every ping 503.
    front = SenderEndpoint(b"", fail_pings=1_000).start()
    try:
        init_workspace(tmp_path / "ws", Settings(response_base_url=front.base))
        ws = load_workspace(tmp_path / "ws")
        front.key = load_key(ws).public_raw
        addresses = ["Reader.One+x@Example.COM", "two@example.com", "three@example.com"]
        batch = make_batch(ws, addresses)
        spool = tmp_path / "spool"
        posted = run_cli("batch", "post", batch.id, "--server", f"spool:{spool}", workspace=ws.root)
        assert posted.returncode == 0, posted.stderr

        # The response domain names the key, as the deployment guide says.
        record = {f"_dni.{ws.settings.response_domain}": [dni_record(fingerprint(front.key))]}
        names = Dnsmasq(tmp_path, txt=record)
        listener = start_listener(ws.root, channels=("smtp",))
        store = ResponderStore.open(tmp_path / "responder.db")
        try:
            add_addresses(store, ["reader.one@example.com", "nobody@example.com"])
            config = PingConfig(
                smtp_server=("127.0.0.1", listener.smtp_port),
                dns=DnsConfig("127.0.0.1", names.port),
                retries=1,
                backoff=0.01,
                allow_private_http=True,
            )
            result = run_once(store, lambda: SpoolSource(spool), ping_config=config)
            again = run_once(store, lambda: SpoolSource(spool), ping_config=config)
        finally:
            store.close()
            names.stop()
            assert listener.stop() == 0
    finally:
        front.stop()

    assert result.pings.delivered == 1 and result.pings.pending == 0
    assert again.pings.requests == 0
    assert front.pings == []  # every HTTP ping failed
    with open_store(ws) as operator, operator.read() as session:
        pings = list(session.scalars(select(Ping)))
        gone = list(
            session.scalars(
                select(Address.canonical).join(Suppression, Suppression.address_id == Address.id)
            )
        )
    assert [(p.channel, p.outcome) for p in pings] == [("smtp", "accepted")]
    assert gone == [scheme.canonicalize("reader.one@example.com")]
