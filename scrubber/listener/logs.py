"""The listener's log lines: key=value on stderr, in both of its processes.

Under attack the same warning repeats thousands of times a second (a refused
connection, ``Too many open files`` from accept): each distinct warning or
error line is written at most once a second, the next one saying how
many were held back. The libraries' loggers (aiohttp, asyncio, aiosmtpd)
go through the same handler without tracebacks: what a client sent is bad
input, not a bug, and its bytes have no place in the log.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

REPEAT_WINDOW = 1.0  # seconds a repeated line is held back
_LIBRARIES = ("aiohttp", "asyncio", "mail.log")
_MAX_KEYS = 1000


class Repeats(logging.Filter):
    """At most one warning or error per (logger, level, message template) a second."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self._last: dict[tuple[str, int, str], tuple[float, int]] = {}  # -> when, held back

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True  # events (suppressed, started) are each worth a line
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        when, held = self._last.get(key, (float("-inf"), 0))
        if now - when < REPEAT_WINDOW:
            self._last[key] = (when, held + 1)
            return False
        if len(self._last) >= _MAX_KEYS:
            self._last.clear()
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} repeated={held}"
        return True


class NoTraceback(logging.Filter):
    """A library's record as one line: the exception's type and first line
    only (the listener's own tracebacks are bugs and stay)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("scrubber"):
            return True
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            first = str(error).splitlines()[0][:200] if str(error) else ""
            record.msg = f"{record.msg} error={type(error).__name__}: {first}"
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def configure_logging(level: str) -> None:
    """key=value lines on stderr for the scrubber loggers; aiosmtpd kept quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("ts=%(asctime)s level=%(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
    )
    handler.addFilter(Repeats())
    handler.addFilter(NoTraceback())
    logger = logging.getLogger("scrubber")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    for name in _LIBRARIES:
        library = logging.getLogger(name)
        library.handlers[:] = [handler]
        library.propagate = False
    # aiosmtpd logs envelopes (full addresses) at INFO/DEBUG: warnings only.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
