"""Where batch articles go: one Transport protocol, NNTP and spool behind it.

``open_transport(url)`` picks the transport from the URL scheme:
``nntp://[user:pass@]host[:port]``, ``nntps://...`` (implicit TLS) or
``spool:DIR`` (rnews-compatible files, relative to the workspace).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from scrubber.errors import UsageError


class PostStatus(enum.StrEnum):
    POSTED = "posted"
    DUPLICATE = "duplicate"  # the server (or spool) already holds this Message-ID


class Transport(Protocol):
    """Posts whole articles; ``server`` names the destination without secrets."""

    @property
    def server(self) -> str: ...

    def post(self, message_id: str, article: bytes) -> PostStatus: ...

    def close(self) -> None: ...


def open_transport(
    url: str,
    *,
    newsgroup: str,
    base: Path | None = None,
    timeout: float = 60.0,
    retries: int = 4,
    backoff: float = 0.5,
) -> Transport:
    """Connect (or open the spool) and check the destination can take ``newsgroup``."""
    if url.startswith("spool:"):
        from scrubber.transport.spool import SpoolTransport

        path = Path(url[len("spool:") :])
        if not path.is_absolute() and base is not None:
            path = base / path
        return SpoolTransport(path)
    parts = urlsplit(url)
    if parts.scheme not in ("nntp", "nntps") or not parts.hostname:
        # The URL may hold a password: name only its scheme.
        raise UsageError(
            "server must be nntp://host, nntps://host or spool:DIR "
            f"(got scheme {parts.scheme or 'none'!r})"
        )
    from scrubber.transport.nntp import NntpTarget, NntpTransport

    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"bad port in server URL {parts.hostname}") from None
    target = NntpTarget(
        host=parts.hostname,
        port=port or (563 if parts.scheme == "nntps" else 119),
        implicit_tls=parts.scheme == "nntps",
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
    return NntpTransport.connect(
        target, newsgroup=newsgroup, timeout=timeout, retries=retries, backoff=backoff
    )
