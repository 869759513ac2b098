"""nntp:// and nntps://: POST over NNTP with AUTHINFO, STARTTLS, timeouts and
retries (:class:`NntpTransport`), and reading a group (:class:`NntpSource`).

Connection errors and transient 4xx answers reconnect and retry with
exponential backoff; definitive answers (441 posting failed, 5xx, refused
credentials) fail at once with the server's own text. Before posting, STAT
asks whether the server already has the Message-ID, so a resumed post never
sends a part twice; a 435/437/441 "duplicate" answer counts as posted too.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from scrubber.errors import (
    ArticleGone,
    AuthenticationError,
    ResponderError,
    TransientTransportError,
    TransportError,
    UsageError,
)
from scrubber.transport import DEFAULT_GROUP, Entry, PostStatus

with warnings.catch_warnings():
    # nntplib is deprecated in 3.11 and gone in 3.13 (standard-nntplib brings it back);
    # everything else imports it from here, so the warning is silenced once.
    warnings.simplefilter("ignore", DeprecationWarning)
    import nntplib as nntplib  # re-exported: the one place it is imported

T = TypeVar("T")
# The largest TCP segment this client sends: the MSS of a 9000-byte jumbo
# frame, so it changes nothing on a real network. On loopback (MTU 64 KiB)
# 64 KiB segments meet INN's 48 KiB receive buffer over TLS, the server
# acknowledges late and each POST stalls for 200 ms (the delayed-ACK
# timer); at this size the 865 KB parts go through in 10 ms.
MAX_SEGMENT = 8960
# Answers that a retry cannot change. Authentication: 480 required, 481
# rejected, 482 out of sequence, 483 privacy (TLS) required, 502 not permitted.
AUTH_CODES = ("480", "481", "482", "483", "502")
_DEFINITIVE = ("411", "440", "441")
_DUPLICATE_CODES = ("435", "437")
_TLS_CUT = (ssl.SSLEOFError, ssl.SSLZeroReturnError)


@dataclass(frozen=True)
class NntpTarget:
    host: str
    port: int
    implicit_tls: bool
    user: str | None
    password: str | None

    @property
    def name(self) -> str:
        scheme = "nntps" if self.implicit_tls else "nntp"
        return f"{scheme}://{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> NntpTarget | None:
        """The server an ``nntp://`` or ``nntps://`` URL names (credentials
        percent-decoded); None for any other URL, which each caller refuses
        in its own words."""
        parts = urlsplit(url)
        if parts.scheme not in ("nntp", "nntps") or not parts.hostname:
            return None
        try:
            port = parts.port
        except ValueError:
            raise UsageError(f"bad port in server URL {parts.hostname}") from None
        return cls(
            host=parts.hostname,
            port=port or (563 if parts.scheme == "nntps" else 119),
            implicit_tls=parts.scheme == "nntps",
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def client(self, timeout: float, *, log_in: bool) -> nntplib.NNTP:
        """A reader-mode nntplib session on a :func:`tcp_socket`; ``log_in``:
        AUTHINFO at once with the URL's credentials (a poster logs in itself,
        after STARTTLS). Raises nntplib's and the socket's errors."""
        cls = _TlsClient if self.implicit_tls else _Client
        options: dict[str, Any] = {"readermode": True, "usenetrc": False, "timeout": timeout}
        if self.implicit_tls:
            options["ssl_context"] = ssl.create_default_context()
        if log_in:
            options.update(user=self.user, password=self.password)
        return cls(self.host, self.port, **options)


class NntpTransport:
    def __init__(
        self,
        target: NntpTarget,
        *,
        newsgroup: str,
        timeout: float,
        retries: int,
        backoff: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.newsgroup = newsgroup
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._conn: nntplib.NNTP | None = None

    @classmethod
    def connect(
        cls, target: NntpTarget, *, newsgroup: str, timeout: float, retries: int, backoff: float
    ) -> NntpTransport:
        transport = cls(
            target, newsgroup=newsgroup, timeout=timeout, retries=retries, backoff=backoff
        )
        transport._with_retries("connect", transport._connection)
        return transport

    @property
    def server(self) -> str:
        return self.target.name

    @property
    def encrypted(self) -> bool:
        """Whether the current session runs over TLS (nntps, or STARTTLS succeeded)."""
        return self._conn is not None and isinstance(self._conn.sock, ssl.SSLSocket)

    def post(self, message_id: str, article: bytes) -> PostStatus:
        return self._with_retries(
            f"post {message_id}", lambda: self._post_once(message_id, article)
        )

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (OSError, EOFError, nntplib.NNTPError):
                _abandon(conn)  # the server is gone already; just free the socket

    # -- one attempt ---------------------------------------------------------

    def _post_once(self, message_id: str, article: bytes) -> PostStatus:
        conn = self._connection()
        try:
            conn.stat(message_id)
            return PostStatus.DUPLICATE
        except nntplib.NNTPTemporaryError as exc:
            if not str(exc).startswith(("430", "423")):
                raise
        try:
            # One pre-formatted buffer: nntplib passes a CRLF-ended "line" through
            # as is, so the article goes out in one write, not one per line.
            conn.post([wire_format(article)])
        except nntplib.NNTPTemporaryError as exc:
            if _is_duplicate(str(exc)):
                return PostStatus.DUPLICATE
            raise
        return PostStatus.POSTED

    def _connection(self) -> nntplib.NNTP:
        if self._conn is None:
            conn = self._open()
            try:
                self._prepare(conn)
            except BaseException:
                _abandon(conn)
                raise
            self._conn = conn
        return self._conn

    def _open(self) -> nntplib.NNTP:
        return self.target.client(self.timeout, log_in=False)

    def _prepare(self, conn: nntplib.NNTP) -> None:
        t = self.target
        if not t.implicit_tls and "STARTTLS" in conn.getcapabilities():
            self._starttls(conn)
        if t.user is not None:
            conn.login(t.user, t.password or "")
        try:
            conn.group(self.newsgroup)
        except nntplib.NNTPTemporaryError as exc:
            if str(exc).startswith("411"):
                raise TransportError(
                    f"{self.server}: newsgroup {self.newsgroup} does not exist ({exc})"
                ) from None
            raise

    @staticmethod
    def _starttls(conn: nntplib.NNTP) -> None:
        """Opportunistic: 580 (server cannot start TLS) leaves the session in plain
        text (RFC 4642), as with a server that offers no STARTTLS; nntps:// insists."""
        try:
            conn.starttls(ssl.create_default_context())
        except nntplib.NNTPPermanentError as exc:
            if not str(exc).startswith("580"):
                raise

    # -- retry policy ----------------------------------------------------------

    def _with_retries(self, what: str, attempt: Callable[[], T]) -> T:
        delay = self.backoff
        for number in range(self.retries + 1):
            try:
                return attempt()
            except (OSError, EOFError, nntplib.NNTPError) as exc:
                self._drop()
                error = self._classify(exc)
                if not isinstance(error, TransientTransportError):
                    raise error from None
                if number == self.retries:
                    raise TransientTransportError(
                        f"{error.message} (gave up after {number + 1} attempts)"
                    ) from None
            self._sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _classify(self, exc: BaseException) -> TransportError:
        text = _one_line(str(exc))
        if isinstance(exc, nntplib.NNTPError):
            if text.startswith(AUTH_CODES):
                return AuthenticationError(_auth_message(self.server, self.target, text))
            if isinstance(exc, nntplib.NNTPTemporaryError) and not text.startswith(_DEFINITIVE):
                return TransientTransportError(f"{self.server}: {text}")
            return TransportError(f"{self.server} refused: {text}")
        # A TLS session cut by the peer (the server stopped, a reset) is a lost
        # connection, worth retrying; any other TLS error is not.
        if isinstance(exc, ssl.SSLError) and not isinstance(exc, _TLS_CUT):
            return TransportError(f"{self.server}: TLS failed: {text}")
        reason = getattr(exc, "strerror", None) or text or type(exc).__name__
        return TransientTransportError(f"cannot reach {self.server}: {reason}")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _abandon(conn)


def tcp_socket(host: str, port: int, timeout: float | None) -> socket.socket:
    """``socket.create_connection`` with the options that must precede connect():
    TCP_MAXSEG (see MAX_SEGMENT) and TCP_NODELAY (a command line and an article's
    last write must not wait for the server's ACK of the previous one)."""
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with contextlib.suppress(OSError):  # not every platform lets it be set
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, MAX_SEGMENT)
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _Client(nntplib.NNTP):
    """nntplib's client on a socket from :func:`tcp_socket` (its one hook for that)."""

    def _create_socket(self, timeout: object) -> socket.socket:
        # nntplib's default is a sentinel object meaning "the global default".
        if not isinstance(timeout, int | float):
            timeout = socket.getdefaulttimeout()
        return tcp_socket(self.host, self.port, timeout)


class _TlsClient(nntplib.NNTP_SSL, _Client):
    """Implicit TLS: NNTP_SSL wraps what ``_Client._create_socket`` connects."""


def _abandon(conn: nntplib.NNTP) -> None:
    """Close a session without QUIT. Its file object wraps the socket and
    keeps it open until closed itself (Python 3.13 warns of the leak)."""
    with contextlib.suppress(OSError):
        conn.file.close()
    conn.sock.close()


def wire_format(article: bytes) -> bytes:
    """CRLF line ends and dot-stuffing (RFC 3977 3.1.1), without the final dot."""
    text = article.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    text = text.replace(b"\n.", b"\n..")
    if text.startswith(b"."):
        text = b"." + text
    return text.replace(b"\n", b"\r\n")


def _is_duplicate(text: str) -> bool:
    code = text[:3]
    return code in _DUPLICATE_CODES or (code == "441" and "duplicate" in text.lower())


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _auth_message(server: str, target: NntpTarget, text: str) -> str:
    if target.user is None:
        return f"{server} requires authentication ({text}); give nntp://USER:PASS@host"
    return f"{server} refused the credentials for {target.user} ({text})"


class NntpSource:
    """A group on a news server, read in reader mode (INN starts in transit mode)."""

    def __init__(self, url: str, group: str = DEFAULT_GROUP, *, timeout: float = 30) -> None:
        target = NntpTarget.parse(url)
        if target is None:
            raise UsageError(f"news server must be nntp://HOST[:PORT] or nntps://..., not {url!r}")
        self.name = f"{target.name}/{group}"
        self.group = group
        self.bodies_fetched = 0
        try:
            self._conn: Any = target.client(timeout, log_in=True)
        except (OSError, nntplib.NNTPError, EOFError) as exc:
            text = str(exc).strip()
            what = "refused the login" if text.startswith(AUTH_CODES) else "unreachable"
            raise ResponderError(
                f"news server {target.host}:{target.port} {what}: {text}"
            ) from None

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
        if text.startswith(AUTH_CODES):
            text += " (give credentials as nntp://USER:PASS@HOST)"
        return ResponderError(f"news server {self.name} failed: {text}")


def _decode(header: str) -> str:
    try:
        return str(nntplib.decode_header(header))
    except (ValueError, LookupError):
        return header
