"""The exception tree: every failure a user can cause is a ScrubberError.

Each class knows the one-line message shown to the user and the exit code the
CLI returns (in brackets where not 1), so the CLI never prints a traceback for
bad input. The whole tree:

* ScrubberError
  x UsageError [2]
  x WorkspaceError
  x ConfigError
  x KeyFileError
  x InputFileError
  x NotFoundError
  x StoreError
    + StoreUnavailable
      - Overloaded
  x SchemeError (also a ValueError)
    + Rejected
  x ArticleError
  x TransportError
    + TransientTransportError
    + AuthenticationError
  x ListenerError
  x BadPing
  x ResponderError
    + ArticleGone
    + SmtpDomainRefused
    + HttpHostRefused
  x ReportError
    + VerificationFailed
      - UntrustedKey [4]
    + ReportCheckFailed [3]
  x ListenerDown [5]
  x ListenerWrongKey [6]
  x DeadlineAtRisk [7]
  x ImportWorkerError
  x ExecutorError
  x UnsubscribeTokenError

Signals that never reach a user stay beside the code that raises and catches
them: ``listener.channel.ChannelClosed`` (a writer child went away) and
``esp.RowError`` (its message is a rejected row's reason).
"""

from __future__ import annotations

from enum import StrEnum


class ScrubberError(Exception):
    """Root of every error scrubber raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ScrubberError):
    """The command was given something it cannot use (bad option value, bad id)."""

    exit_code = 2


class WorkspaceError(ScrubberError):
    """No workspace found, or the workspace is broken or already exists."""


class ConfigError(ScrubberError):
    """scrubber.toml is missing a value or holds one of the wrong kind."""


class KeyFileError(ScrubberError):
    """The Ed25519 key file is missing, unreadable or malformed."""


class InputFileError(ScrubberError):
    """An input file cannot be read or is not what it claims to be."""


class NotFoundError(ScrubberError):
    """A named list, batch or report does not exist."""


class StoreError(ScrubberError):
    """The database cannot be opened, migrated or written."""


class StoreUnavailable(StoreError):
    """The database is locked or down; the operation may succeed later."""


class Overloaded(StoreUnavailable):
    """Too many pings wait for the database; the sender should retry later."""


class SchemeError(ScrubberError, ValueError):
    """A value does not fit the published scheme (bad salt, bad parameters,
    not base64url). Also a ValueError: the scheme is pure, and callers that
    validate input with it catch ValueError."""


class Rejected(SchemeError):
    """An address the scheme refuses; ``reason`` is its ``scheme.Reject`` code."""

    def __init__(self, reason: StrEnum) -> None:
        super().__init__(reason.value)
        self.reason = reason


class ArticleError(ScrubberError):
    """A batch article is malformed, truncated, tampered with or badly signed."""


class TransportError(ScrubberError):
    """The news server or spool cannot be reached or refused the operation."""


class TransientTransportError(TransportError):
    """A failure that a retry may cure (connection refused, 4xx)."""


class AuthenticationError(TransportError):
    """The news server refused the credentials, or wants some and got none."""


class ListenerError(ScrubberError):
    """The listener cannot start (port in use, bad address)."""


class BadPing(ScrubberError):
    """A request body that is not a ping; answered ``status`` (400 or 415) with the message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ResponderError(ScrubberError):
    """The reference responder cannot complete a scan or a ping."""


class ReportError(ScrubberError):
    """A report cannot be built, written or verified."""


class VerificationFailed(ReportError):
    """A signed report does not match its signature."""


class UntrustedKey(VerificationFailed):
    """A report validly signed, but by a key the verifier does not trust."""

    exit_code = 4


class ListenerDown(ScrubberError):
    """``status``: the configured listener does not answer."""

    exit_code = 5


class ListenerWrongKey(ScrubberError):
    """``status``: the listener reached serves another key than this workspace's."""

    exit_code = 6


class DeadlineAtRisk(ScrubberError):
    """``status``: accepted opt-outs have waited too long for their suppression."""

    exit_code = 7


class ReportCheckFailed(ReportError):
    """``report --check``: a deadline was missed or an invariant broken."""

    exit_code = 3


class ArticleGone(ResponderError):
    """An article the overview listed is no longer on the server (expired, cancelled)."""


class SmtpDomainRefused(ResponderError):
    """A batch's Respond-SMTP domain did not prove it is the key holder's, or
    delivers to no address a ping may go to: the SMTP ping is skipped."""


class HttpHostRefused(ResponderError):
    """A batch's Respond-HTTP host is, or resolves to, a loopback, private or
    otherwise non-public address: no request is made to it."""


class ImportWorkerError(ScrubberError):
    """The process canonicalizing a large import died before it finished."""


class ExecutorError(ScrubberError):
    """The hashing executor cannot start or lost its workers (e.g. a Dask cluster)."""


class UnsubscribeTokenError(ScrubberError):
    """An unsubscribe token is malformed or was not issued by this workspace."""
