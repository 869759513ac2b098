"""The listener's log lines: key=value on stderr, in both of its processes."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    """key=value lines on stderr for the scrubber loggers; aiosmtpd kept quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("ts=%(asctime)s level=%(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
    )
    logger = logging.getLogger("scrubber")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    # aiosmtpd logs envelopes (full addresses) at INFO/DEBUG: warnings only.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
