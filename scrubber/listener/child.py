"""The writer process's main: where a ping is verified and stored in ``scrubber listen``.

The child reads groups from its end of the pipe, a
``multiprocessing.connection.Connection``, runs them through the Ingestor
and answers each only after its commit. It imports no web or mail server,
so it starts quickly.
"""

from __future__ import annotations

import logging
import signal
from multiprocessing.connection import Connection

from scrubber.errors import ScrubberError, StoreError
from scrubber.listener.channel import pack_result, unpack
from scrubber.listener.ingestor import Ingestor
from scrubber.listener.logs import configure_logging
from scrubber.store import Store

log = logging.getLogger("scrubber.listener")


def main(
    conn: Connection, url: str, lock_wait_ms: int, log_level: str, check_key: bytes = b""
) -> None:
    # The parent decides when to stop: it drains its queue, then closes the
    # pipe. A signal to the whole process group must not cut a commit short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(log_level)
    try:
        store = Store(url, lock_wait_ms=lock_wait_ms)
        ingestor = Ingestor(store, check_key=check_key)
    except ScrubberError as error:
        conn.send(("error", error))
        return
    conn.send(("ready", None))
    try:
        _serve(conn, ingestor)
    finally:
        store.close()


def _serve(conn: Connection, ingestor: Ingestor) -> None:
    while True:
        try:
            requests = conn.recv()
        except (EOFError, OSError):  # the listener closed or died
            return
        assert isinstance(requests, list)
        try:
            results = ingestor.record_group([unpack(r) for r in requests])
            reply: tuple[str, object] = ("ok", [pack_result(r) for r in results])
        except ScrubberError as error:
            reply = ("error", error)
        except Exception as error:  # keep serving, but say what broke
            log.exception("event=writer-error")
            reply = ("error", StoreError(f"cannot store pings: {error}"))
        try:
            conn.send(reply)
        except OSError:  # the listener is gone; what was committed stays
            return
