"""Where batch articles go and come from: one module per medium for both directions.

``open_transport(url)`` (posting) and ``open_source(...)`` (reading) pick
the medium from the URL scheme: ``nntp://[user:pass@]host[:port]``,
``nntps://...`` (implicit TLS), both in transport/nntp.py, or ``spool:DIR``
(rnews-compatible files, relative to the workspace), in transport/spool.py.
A reader's :class:`ArticleSource` lists articles after a high-water mark
(Subject and Message-ID only, no bodies) and fetches one body at a time,
counting them, so a scan can show how few bodies it needed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from scrubber.errors import UsageError

if TYPE_CHECKING:
    from scrubber.transport.nntp import NntpTarget

# The group batches are posted to and read from unless configured otherwise.
DEFAULT_GROUP = "alt.dni.batches"


class PostStatus(enum.StrEnum):
    POSTED = "posted"
    DUPLICATE = "duplicate"  # the server (or spool) already holds this Message-ID


class Transport(Protocol):
    """Posts whole articles; ``server`` names the destination without secrets."""

    @property
    def server(self) -> str: ...

    def post(self, message_id: str, article: bytes) -> PostStatus: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Entry:
    """One article as a source's overview shows it."""

    key: str  # article number (NNTP) or spool position
    subject: str
    message_id: str


class ArticleSource(Protocol):
    name: str  # stable identity of (place, group), the key of the high-water mark
    bodies_fetched: int

    def overview(self, mark: str | None) -> tuple[list[Entry], str | None]: ...

    def body(self, entry: Entry) -> bytes: ...

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

        return SpoolTransport(_spool_path(url, base))
    from scrubber.transport.nntp import NntpTransport

    return NntpTransport.connect(
        _nntp_target(url), newsgroup=newsgroup, timeout=timeout, retries=retries, backoff=backoff
    )


def server_name(url: str, *, base: Path | None = None) -> str:
    """The ``server`` a transport opened on ``url`` will have, without
    connecting: ``nntp://HOST:PORT`` (no credentials, the default port
    spelled out, so two spellings of one server are one server) or
    ``spool:DIR``. Posting records and resumes parts per server by it."""
    if url.startswith("spool:"):
        return f"spool:{_spool_path(url, base)}"
    return _nntp_target(url).name


def _spool_path(url: str, base: Path | None) -> Path:
    path = Path(url[len("spool:") :])
    return base / path if not path.is_absolute() and base is not None else path


def _nntp_target(url: str) -> NntpTarget:
    from scrubber.transport.nntp import NntpTarget

    target = NntpTarget.parse(url)
    if target is None:
        # The URL may hold a password: name only its scheme.
        raise UsageError(
            f"server must be nntp://host, nntps://host or spool:DIR (got scheme {_scheme(url)!r})"
        )
    return target


def open_source(server: str | None, spool: Path | None, group: str) -> ArticleSource:
    """The source a scan reads: exactly one of a server URL or a spool directory."""
    if (server is None) == (spool is None):
        raise UsageError("give exactly one of --server URL or --spool DIR")
    from scrubber.transport.spool import SpoolSource

    if spool is not None:
        return SpoolSource(spool, group)
    assert server is not None
    if server.startswith("spool:"):
        return SpoolSource(Path(server[len("spool:") :]), group)
    from scrubber.transport.nntp import NntpSource

    return NntpSource(server, group)


def _scheme(url: str) -> str:
    return urlsplit(url).scheme or "none"
