"""One responder run: scan the source, look through earlier batches for newly
protected addresses, then send every proof still owed; and runs repeated
(``responder scan --watch``)."""

from __future__ import annotations

import time
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


def run(
    store: ResponderStore,
    open_source: Callable[[], ArticleSource],
    on_result: Callable[[RunResult], None],
    *,
    caps: Caps | None = None,
    ping_config: PingConfig | None = None,
) -> None:
    """One run, shown with ``on_result``; a run that could not read its source
    then raises :class:`ResponderError` (its pings went out all the same)."""
    result = run_once(store, open_source, caps=caps, ping_config=ping_config)
    on_result(result)
    if result.error:
        raise ResponderError(result.error)


def watch(
    store: ResponderStore,
    open_source: Callable[[], ArticleSource],
    every: float,
    on_result: Callable[[RunResult], None],
    on_error: Callable[[ResponderError], None],
    *,
    caps: Caps | None = None,
    ping_config: PingConfig | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run every ``every`` seconds until interrupted. A failed source is part
    of its run's result; a run that could not start (another scan holds the
    database) goes to ``on_error``, and the next one tries again."""
    while True:
        try:
            result = run_once(store, open_source, caps=caps, ping_config=ping_config)
        except ResponderError as error:
            on_error(error)
        else:
            on_result(result)
        sleep(every)
