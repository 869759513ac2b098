"""Suppressions in and out of other systems: ESP and list-manager exports.

Each importer reads the columns a service documents for its suppression or
unsubscribe export and maps that service's reason (and origin, where it has
one) onto the ledger's. Parsing is pure over the rows; ``import_files``
records everything in one transaction. Extra columns are ignored; a file
missing a required column is refused whole; a row with a bad address,
reason or time becomes a reject with its line number and nothing of it is
stored.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from scrubber import ledger, scheme
from scrubber.errors import InputFileError, UsageError
from scrubber.ledger import Entry, Reason
from scrubber.readers import GZIP_MAGIC, open_binary
from scrubber.store import Store
from scrubber.store.types import utcnow

# A row as the importers see it: header name (lower case) -> cell.
Record = dict[str, str]


class RowError(ValueError):
    """A row that cannot be imported; the message is the reject reason."""


@dataclass(frozen=True)
class Parsed:
    """What one row asks for, before canonicalization."""

    address: str
    reason: Reason
    received_at: datetime | None
    origin: str | None


@dataclass(frozen=True)
class Reject:
    path: str
    line: int
    reason: str


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    added: int
    already: int
    earlier: int
    skipped: int  # rows that are not suppressions (e.g. listmonk's enabled subscribers)
    rejects: list[Reject]


# -- times -------------------------------------------------------------------


def parse_time(text: str) -> datetime | None:
    """ISO 8601, Unix seconds, or RFC 2822 (Mailgun); naive times are UTC."""
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    try:
        found = datetime.fromisoformat(text.replace(" UTC", "+00:00"))
    except ValueError:
        try:
            found = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise RowError(f"unreadable time {text[:40]!r}") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


# -- one mapper per service --------------------------------------------------


def _need(record: Record, *names: str) -> list[str]:
    return [record.get(name, "") for name in names]


def _postmark(record: Record) -> Parsed | None:
    # Postmark's suppression dump: EmailAddress, SuppressionReason
    # (HardBounce, SpamComplaint, ManualSuppression), Origin (Recipient,
    # Customer, Admin), CreatedAt.
    address, why, origin, created = _need(
        record, "emailaddress", "suppressionreason", "origin", "createdat"
    )
    reasons = {"hardbounce": Reason.HARD_BOUNCE, "spamcomplaint": Reason.COMPLAINT}
    reason = reasons.get(why.lower())
    if reason is None and why.lower() == "manualsuppression":
        # A recipient's own manual suppression is their unsubscribe link.
        reason = Reason.UNSUBSCRIBE if origin.lower() == "recipient" else Reason.MANUAL
    if reason is None:
        raise RowError(f"unknown SuppressionReason {why[:40]!r}")
    return Parsed(address, reason, parse_time(created), origin or None)


def _ses(record: Record) -> Parsed | None:
    # SES suppressed destinations: CSV email,BOUNCE|COMPLAINT or JSON lines
    # with emailAddress, reason (and lastUpdateTime in list output).
    address = record.get("emailaddress") or record.get("email", "")
    why = record.get("reason", "").upper()
    reasons = {"BOUNCE": Reason.HARD_BOUNCE, "COMPLAINT": Reason.COMPLAINT}
    if why not in reasons:
        raise RowError(f"unknown reason {why[:40]!r} (BOUNCE or COMPLAINT)")
    return Parsed(address, reasons[why], parse_time(record.get("lastupdatetime", "")), "ses")


def _mailgun(record: Record) -> Parsed | None:
    # Mailgun's bounces (address, code, error, created_at), unsubscribes
    # (address, tags, created_at) and complaints (address, created_at).
    if "code" in record or "error" in record:
        reason, origin = Reason.HARD_BOUNCE, record.get("code") or None
    elif "tags" in record:
        reason, origin = Reason.UNSUBSCRIBE, record.get("tags") or None
    else:
        reason, origin = Reason.COMPLAINT, None
    return Parsed(
        record.get("address", ""), reason, parse_time(record.get("created_at", "")), origin
    )


def _sendgrid(record: Record) -> Parsed | None:
    # SendGrid: global unsubscribes (email, created), bounces (email,
    # created, reason, status), spam reports (email, created, ip), invalid
    # emails (email, created, reason).
    if "ip" in record:
        reason = Reason.COMPLAINT
    elif "reason" in record:
        reason = Reason.HARD_BOUNCE  # a bounce or an invalid address
    else:
        reason = Reason.UNSUBSCRIBE
    origin = record.get("status") or None
    return Parsed(record.get("email", ""), reason, parse_time(record.get("created", "")), origin)


def _listmonk(record: Record) -> Parsed | None:
    # listmonk's subscriber export: uuid, email, name, attributes, status
    # (enabled, disabled, blocklisted), created_at, updated_at.
    if record.get("status", "").lower() != "blocklisted":
        return None
    when = parse_time(record.get("updated_at", "")) or parse_time(record.get("created_at", ""))
    return Parsed(record.get("email", ""), Reason.UNSUBSCRIBE, when, "blocklisted")


def _mautic(record: Record) -> Parsed | None:
    # Mautic's do-not-contact: email, reason (1 unsubscribed, 2 bounced,
    # 3 manual), date_added, channel, comments.
    reasons = {"1": Reason.UNSUBSCRIBE, "2": Reason.HARD_BOUNCE, "3": Reason.MANUAL}
    why = record.get("reason", "").strip()
    if why not in reasons:
        raise RowError(f"unknown do-not-contact reason {why[:40]!r} (1, 2 or 3)")
    origin = record.get("channel") or None
    return Parsed(
        record.get("email", ""), reasons[why], parse_time(record.get("date_added", "")), origin
    )


def _mailchimp(record: Record) -> Parsed | None:
    # Mailchimp's audience exports: unsubscribed (Email Address, ...,
    # UNSUB_TIME, UNSUB_CAMPAIGN_TITLE, UNSUB_REASON) and cleaned (Email
    # Address, ..., CLEAN_TIME, CLEAN_CAMPAIGN_TITLE).
    address = record.get("email address", "")
    if "clean_time" in record:
        when, campaign = record["clean_time"], record.get("clean_campaign_title", "")
        return Parsed(address, Reason.HARD_BOUNCE, parse_time(when), campaign or None)
    when, campaign = record.get("unsub_time", ""), record.get("unsub_campaign_title", "")
    return Parsed(address, Reason.UNSUBSCRIBE, parse_time(when), campaign or None)


def _generic(record: Record) -> Parsed | None:
    # Our own export (scrubber suppress export --format csv) or any CSV with
    # an address column and optional reason, origin and time.
    address = record.get("address") or record.get("email", "")
    why = record.get("reason", "").strip().lower() or Reason.UNSUBSCRIBE.value
    try:
        reason = Reason(why)
    except ValueError:
        raise RowError(f"unknown reason {why[:40]!r}") from None
    when = record.get("received_at") or record.get("time", "")
    return Parsed(address, reason, parse_time(when), record.get("origin") or None)


@dataclass(frozen=True)
class Format:
    mapper: Callable[[Record], Parsed | None]
    # Each inner tuple is one accepted column set: a file needs all of one.
    required: tuple[tuple[str, ...], ...]


FORMATS: dict[str, Format] = {
    "postmark": Format(_postmark, (("emailaddress", "suppressionreason"),)),
    "sendgrid": Format(_sendgrid, (("email", "created"),)),
    "ses": Format(_ses, (("email", "reason"), ("emailaddress", "reason"))),
    "mailgun": Format(_mailgun, (("address", "created_at"),)),
    "listmonk": Format(_listmonk, (("email", "status"),)),
    "mautic": Format(_mautic, (("email", "reason"),)),
    "mailchimp": Format(_mailchimp, (("email address",),)),
    "csv": Format(_generic, (("address",), ("email",))),
}


# -- reading files -----------------------------------------------------------


def _read_text(path: Path) -> str:
    """The whole file as text (exports are read whole: their records are
    held for one transaction anyway)."""
    try:
        with open_binary(path) as raw:
            data = raw.read()
        if data[:2] == GZIP_MAGIC:
            data = gzip.decompress(data)
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputFileError(f"{path} is not UTF-8 text (binary data?)") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputFileError(f"cannot read {path}: {exc}") from None


def read_records(path: Path, source: str) -> Iterator[tuple[int, Record]]:
    """(line, record) of a CSV (header first) or JSON export; keys lower case.

    JSON: an array, an object holding one (Postmark's ``Suppressions``), or
    one object a line (SES).
    """
    text = _read_text(path)
    if text.lstrip()[:1] in ("[", "{"):
        yield from _json_records(text, path)
    else:
        yield from _csv_records(io.StringIO(text, newline=""), path, source)


def _csv_records(text: io.StringIO, path: Path, source: str) -> Iterator[tuple[int, Record]]:
    reader = csv.reader(text)
    try:
        header = [cell.strip().lower() for cell in next(reader, [])]
        if source == "ses" and header and "@" in header[0]:
            # SES bulk-import files may have no header: email,reason.
            yield 1, {"email": header[0], "reason": header[1] if len(header) > 1 else ""}
            header = ["email", "reason"]
        _check_columns(header, path, source)
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, dict(zip(header, row, strict=False))
    except csv.Error as exc:
        raise InputFileError(f"{path} is not valid CSV: {exc}") from None


def _json_records(text: str, path: Path) -> Iterator[tuple[int, Record]]:
    try:
        data = json.loads(text)
        items = data.get("Suppressions", [data]) if isinstance(data, dict) else data
        numbered = list(enumerate(items, 1))
    except json.JSONDecodeError:
        # One JSON object a line (SES's newline-delimited export).
        numbered = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    numbered.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise InputFileError(f"{path}:{number}: not JSON: {exc.msg}") from None
    for number, item in numbered:
        if not isinstance(item, dict):
            raise InputFileError(f"{path}:{number}: a JSON record must be an object")
        yield number, {str(k).lower(): "" if v is None else str(v) for k, v in item.items()}


def _check_columns(header: list[str], path: Path, source: str) -> None:
    sets = FORMATS[source].required
    if not any(set(needed) <= set(header) for needed in sets):
        wanted = " or ".join(", ".join(needed) for needed in sets)
        raise InputFileError(
            f"{path} is not a {source} export: it needs the columns {wanted} "
            f"(found {', '.join(header) or 'none'})"
        )


# -- importing ---------------------------------------------------------------


def parse_file(path: Path, source: str) -> Iterator[tuple[int, Parsed | None] | Reject]:
    """Each row's request (None: not a suppression), or its reject."""
    mapper = FORMATS[source].mapper
    for line, record in read_records(path, source):
        try:
            yield line, mapper(record)
        except RowError as exc:
            yield Reject(str(path), line, str(exc))


def import_files(store: Store, source: str, paths: Iterable[Path]) -> ImportSummary:
    """Import the suppressions of ``paths`` (all ``source`` exports) in one transaction."""
    if source not in FORMATS:
        raise UsageError(f"unknown source {source!r}; one of {', '.join(FORMATS)}")
    channel = ledger.import_channel(source)
    now = utcnow()
    entries: list[Entry] = []
    rejects: list[Reject] = []
    rows = skipped = 0
    for path in paths:
        for item in parse_file(path, source):
            rows += 1
            if isinstance(item, Reject):
                rejects.append(item)
                continue
            line, parsed = item
            if parsed is None:
                skipped += 1
                continue
            entry = _entry(parsed, channel, path, line, now)
            if isinstance(entry, str):
                rejects.append(Reject(str(path), line, entry))
            else:
                entries.append(entry)
    summary = ledger.record(store, entries)
    return ImportSummary(rows, summary.added, summary.already, summary.earlier, skipped, rejects)


def _entry(parsed: Parsed, channel: str, path: Path, line: int, now: datetime) -> Entry | str:
    canonical = scheme.try_canonicalize(parsed.address)
    if isinstance(canonical, scheme.Reject):
        return canonical.value
    received = parsed.received_at or now
    if received > now:
        return "time in the future"
    return Entry(
        canonical,
        channel,
        parsed.reason,
        received,
        origin=parsed.origin,
        request_id=f"{path.name}:{line}",
        evidence=path.name,
    )


# -- exporting ---------------------------------------------------------------

EXPORT_FORMATS = ("csv", "postmark", "sendgrid", "ses", "mailgun", "md5", "sha256", "sha512")
DIGESTS = ("md5", "sha256", "sha512")


def export_lines(store: Store, fmt: str, *, since: datetime | None = None) -> Iterator[str]:
    """The ledger in ``fmt``, one line at a time (a header first for CSVs).

    The digest formats are OPTIZMO-style: lower case and trimmed, then the
    hex digest. Unsalted, they are reversible by dictionary.
    """
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}")
    rows = ledger.rows(store, since=since)
    if fmt in DIGESTS:
        return (hashlib.new(fmt, r.canonical.strip().lower().encode()).hexdigest() for r in rows)
    return _csv_lines(fmt, rows)


def _csv_lines(fmt: str, rows: Iterator[ledger.Row]) -> Iterator[str]:
    header, render = _CSV_EXPORTS[fmt]
    yield _csv_line(header)
    for row in rows:
        yield _csv_line(render(row))


def _csv_line(cells: Iterable[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _postmark_reason(row: ledger.Row) -> str:
    return {"hard-bounce": "HardBounce", "complaint": "SpamComplaint"}.get(
        row.reason, "ManualSuppression"
    )


def _ses_reason(row: ledger.Row) -> str:
    # SES knows only BOUNCE and COMPLAINT; an opt-out is closest to a complaint
    # (never mail again), a bounce to BOUNCE.
    return "BOUNCE" if row.reason == "hard-bounce" else "COMPLAINT"


_CSV_EXPORTS: dict[str, tuple[list[str], Callable[[ledger.Row], list[str]]]] = {
    "csv": (
        ["address", "channel", "reason", "origin", "received_at", "suppressed_at"],
        lambda r: [
            r.canonical,
            r.channel,
            r.reason,
            r.origin or "",
            _iso(r.received_at),
            _iso(r.suppressed_at),
        ],
    ),
    "postmark": (
        ["EmailAddress", "SuppressionReason", "CreatedAt"],
        lambda r: [r.canonical, _postmark_reason(r), _iso(r.received_at)],
    ),
    "sendgrid": (
        ["email", "created"],
        lambda r: [r.canonical, str(int(r.received_at.timestamp()))],
    ),
    "ses": (["email", "reason"], lambda r: [r.canonical, _ses_reason(r)]),
    "mailgun": (
        ["address", "tags", "created_at"],
        lambda r: [r.canonical, "", r.received_at.strftime("%a, %d %b %Y %H:%M:%S UTC")],
    ),
}
