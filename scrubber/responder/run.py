"""One responder run: scan the source, look through earlier batches for newly
protected addresses, then send every proof still owed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scrubber.errors import ResponderError
from scrubber.responder.ping import PingConfig, PingReport, send_pending
from scrubber.responder.recheck import recheck
from scrubber.responder.scan import Caps, ScanReport, scan
from scrubber.responder.store import ResponderStore
from scrubber.transport import ArticleSource


@dataclass(frozen=True)
class RunResult:
    scan: ScanReport | None  # None when the source failed
    error: str | None
    pings: PingReport
    recheck: ScanReport | None = None  # earlier batches looked through for new addresses


def run_once(
    store: ResponderStore,
    open_source: Callable[[], ArticleSource],
    *,
    caps: Caps | None = None,
    ping_config: PingConfig | None = None,
) -> RunResult:
    """Scan, then ping. Pings owed from earlier runs go out even if the news
    server is down this time; a failed scan leaves the mark where it was."""
    report: ScanReport | None = None
    again: ScanReport | None = None
    error: str | None = None
    with store.exclusive():
        try:
            source = open_source()
            try:
                report = scan(store, source, caps=caps)
                again = recheck(store, source)
            finally:
                source.close()
        except ResponderError as exc:
            error = exc.message
        return RunResult(report, error, send_pending(store, ping_config), again)
