"""Where articles come from: a news server (NNTP) or a spool directory.

Both sit behind :class:`ArticleSource`: ``overview(mark)`` lists the articles
after a high-water mark (Subject and Message-ID only, no bodies) and the new
mark; ``body(entry)`` fetches one body and counts it, so a scan can show how
few bodies it needed.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from scrubber.article import split_article
from scrubber.errors import ArticleError, ArticleGone, ResponderError, UsageError
from scrubber.transport.nntp import nntplib

DEFAULT_GROUP = "alt.dni.batches"
_RNEWS = b"#! rnews "
_AUTH_CODES = ("480", "481", "482", "502")
HEAD_BYTES = 64 * 1024  # the overview reads this much of a spool file: headers only


@dataclass(frozen=True)
class Entry:
    """One article as the overview shows it."""

    key: str  # article number (NNTP) or spool position
    subject: str
    message_id: str


class ArticleSource(Protocol):
    name: str  # stable identity of (place, group), the key of the high-water mark
    bodies_fetched: int

    def overview(self, mark: str | None) -> tuple[list[Entry], str | None]: ...

    def body(self, entry: Entry) -> bytes: ...

    def close(self) -> None: ...


class NntpSource:
    """A group on a news server, read in reader mode (INN starts in transit mode)."""

    def __init__(self, url: str, group: str = DEFAULT_GROUP, *, timeout: float = 30) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("nntp", "nntps") or not parts.hostname:
            raise UsageError(f"news server must be nntp://HOST[:PORT] or nntps://..., not {url!r}")
        port = parts.port or (563 if parts.scheme == "nntps" else 119)
        self.name = f"{parts.scheme}://{parts.hostname}:{port}/{group}"
        self.group = group
        self.bodies_fetched = 0
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        cls = nntplib.NNTP_SSL if parts.scheme == "nntps" else nntplib.NNTP
        try:
            self._conn: Any = cls(
                parts.hostname,
                port,
                user=user,
                password=password,
                readermode=True,
                timeout=timeout,
            )
        except (OSError, nntplib.NNTPError, EOFError) as exc:
            text = str(exc).strip()
            what = "refused the login" if text.startswith(_AUTH_CODES) else "unreachable"
            raise ResponderError(f"news server {parts.hostname}:{port} {what}: {text}") from None

    def overview(self, mark: str | None) -> tuple[list[Entry], str | None]:
        try:
            _, count, first, last, _ = self._conn.group(self.group)
        except nntplib.NNTPTemporaryError as exc:
            if str(exc).startswith("411"):
                raise ResponderError(f"group {self.group} does not exist on the server") from None
            raise self._failed(exc) from None
        except (OSError, nntplib.NNTPError, EOFError) as exc:
            raise self._failed(exc) from None
        start = max(int(first), int(mark) + 1 if mark else 0)
        if not count or start > int(last):
            return [], mark
        try:
            _, overviews = self._conn.over((start, int(last)))
        except (OSError, nntplib.NNTPError, EOFError) as exc:
            raise self._failed(exc) from None
        entries = [
            Entry(str(number), _decode(fields.get("subject", "")), fields["message-id"])
            for number, fields in overviews
            if fields.get("message-id")
        ]
        return entries, str(last)

    def body(self, entry: Entry) -> bytes:
        try:
            _, info = self._conn.body(entry.message_id)
        except nntplib.NNTPTemporaryError as exc:
            # 430: expired or cancelled between OVER and BODY; the scan skips it.
            raise ArticleGone(f"article {entry.message_id} not available: {exc}") from None
        except (OSError, nntplib.NNTPError, EOFError) as exc:
            raise self._failed(exc) from None
        self.bodies_fetched += 1
        return b"".join(line + b"\n" for line in info.lines)

    def close(self) -> None:
        with contextlib.suppress(OSError, nntplib.NNTPError, EOFError):
            self._conn.quit()

    def _failed(self, exc: BaseException) -> ResponderError:
        text = str(exc).strip()
        if text.startswith(_AUTH_CODES):
            text += " (give credentials as nntp://USER:PASS@HOST)"
        return ResponderError(f"news server {self.name} failed: {text}")


def _decode(header: str) -> str:
    try:
        return str(nntplib.decode_header(header))
    except (ValueError, LookupError):
        return header


class SpoolSource:
    """A spool directory: one article per file (optionally rnews-framed).

    The mark is ``<mtime_ns>:<relative path>``; files are read in that order,
    so files that appear later are read in a later scan.
    """

    def __init__(self, directory: Path, group: str = DEFAULT_GROUP) -> None:
        if not directory.is_dir():
            raise ResponderError(f"spool directory {directory} does not exist")
        self.directory = directory.resolve()
        self.group = group
        self.name = f"spool:{self.directory}/{group}"
        self.bodies_fetched = 0
        self._paths: dict[str, Path] = {}

    def overview(self, mark: str | None) -> tuple[list[Entry], str | None]:
        positions = sorted(self._positions())
        entries: list[Entry] = []
        for position, path in positions:
            if mark is not None and position <= mark:
                continue
            headers = self._headers(path)
            if headers is None or self.group not in _groups(headers):
                continue
            self._paths[position] = path
            entries.append(Entry(position, headers.get("subject", ""), headers["message-id"]))
        newest = positions[-1][0] if positions else None
        return entries, max(filter(None, (mark, newest)), default=None)

    def body(self, entry: Entry) -> bytes:
        raw = _read(self._paths[entry.key])
        if raw is None:
            raise ArticleGone(f"spool file for {entry.message_id} disappeared")
        self.bodies_fetched += 1
        return split_article(raw)[1]

    def close(self) -> None:
        self._paths.clear()

    def _positions(self) -> list[tuple[str, Path]]:
        found = []
        for root, dirs, names in os.walk(self.directory):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in names:
                if name.startswith(".") or name.endswith((".tmp", "~")):
                    continue
                path = Path(root) / name
                try:
                    mtime = path.stat().st_mtime_ns
                except OSError:
                    continue
                found.append((f"{mtime:020d}:{path.relative_to(self.directory)}", path))
        return found

    def _headers(self, path: Path) -> dict[str, str] | None:
        raw = _read(path, HEAD_BYTES)
        if raw is None:
            return None
        try:
            headers = split_article(raw)[0]
        except ArticleError:
            return None
        return headers if headers.get("message-id") else None


def _read(path: Path, limit: int = -1) -> bytes | None:
    """The article in ``path`` (its first ``limit`` bytes), without rnews framing."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit)
    except OSError:
        return None
    if raw.startswith(_RNEWS):
        raw = raw.partition(b"\n")[2]
    return raw


def _groups(headers: dict[str, str]) -> list[str]:
    return [g.strip() for g in headers.get("newsgroups", "").split(",")]


def open_source(server: str | None, spool: Path | None, group: str) -> ArticleSource:
    """The source a scan reads: exactly one of a server URL or a spool directory."""
    if (server is None) == (spool is None):
        raise UsageError("give exactly one of --server URL or --spool DIR")
    if spool is not None:
        return SpoolSource(spool, group)
    assert server is not None
    if server.startswith("spool:"):
        return SpoolSource(Path(server[len("spool:") :]), group)
    return NntpSource(server, group)
