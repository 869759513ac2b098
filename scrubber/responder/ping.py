"""Sending what scans found: key binding first, then HTTP pings, SMTP as fallback.

Every proof owed is a ``Match`` row with ``pings_due`` (1, or 2/4/8 when a
key re-lists an address) and ``pings_sent``; this module only ever moves
``pings_sent`` up after the sender acknowledged, so an outage leaves the rest
owed for the next run and nothing acknowledged is sent again.
"""

from __future__ import annotations

import json
import logging
import random
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

from sqlalchemy import func, select

from scrubber import keys, scheme
from scrubber.errors import HttpHostRefused, SmtpDomainRefused
from scrubber.responder import dial, domain, proxy
from scrubber.responder.domain import DnsConfig
from scrubber.responder.models import Match, PingLog, SeenBatch
from scrubber.responder.proxy import SocksProxy
from scrubber.responder.store import ResponderStore
from scrubber.store.types import utcnow

log = logging.getLogger("scrubber.responder")

MAX_PROOFS = 1000  # per request, the listener's limit
ANSWER_CHARS = 500  # of an error answer
MAX_ANSWER = 64 * 1024  # an OK answer lists one outcome per proof
DEFAULT_DELAY = 6 * 3600.0  # sent within 6 h of discovery: the 48 h rule then runs from there
HELO_NAME = "responder.invalid"
_RANDOM = random.SystemRandom()  # the delays should not be predictable from earlier ones


@dataclass(frozen=True)
class PingConfig:
    smtp_server: tuple[str, int] | None = None  # a relay; default: the domain's MX hosts
    smtp_port: int = 25  # of the MX hosts (tests run their sink elsewhere)
    use_smtp: bool = True
    dns: DnsConfig = field(default_factory=DnsConfig)
    # Hosts on loopback or private ranges (tests, lab networks); the CLI's
    # --allow-private sets both.
    allow_private_http: bool = False  # the batch's Respond-HTTP host (responder/dial.py)
    allow_private_smtp: bool = False  # its MX hosts (responder/domain.py)
    proxy: SocksProxy | None = None  # every HTTP and SMTP connection goes through it
    # Each proof waits a random time in [0, delay] seconds after it was found,
    # so its arrival tells the sender neither when we scanned nor which
    # addresses are one registrant's. The CLI's default is DEFAULT_DELAY.
    delay: float = 0
    clock: Callable[[], datetime] = utcnow
    retries: int = 3
    backoff: float = 0.5  # seconds, doubled per retry
    timeout: float = 10
    sleep: Callable[[float], None] = time.sleep


@dataclass
class PingReport:
    delivered: int = 0  # proofs acknowledged
    requests: int = 0
    refused: int = 0  # matches never to be sent (forged batch, sender said no)
    failures: list[str] = field(default_factory=list)
    pending: int = 0  # proofs still owed after this run
    waiting: int = 0  # of those, not yet due (their random delay runs)
    next_due: datetime | None = None


@dataclass(frozen=True)
class _Answer:
    ok: bool
    transient: bool
    text: str
    host_refused: bool = False  # the host is not public: no request was made


def send_pending(store: ResponderStore, config: PingConfig | None = None) -> PingReport:
    """Send every proof owed whose delay has passed, batch by batch; returns what happened."""
    config = config or PingConfig()
    report = PingReport()
    now = config.clock()
    _schedule(store, config.delay)
    for batch in _batches_owed(store, now):
        _send_batch(store, batch, config, report, now)
    report.pending = owed(store)
    report.waiting, report.next_due = _waiting(store, now)
    return report


def _schedule(store: ResponderStore, delay: float) -> None:
    """Draw the delay of every proof newly owed, durably, once."""
    with store.write() as session:
        rows = session.scalars(
            select(Match).where(Match.state == "pending", Match.not_before.is_(None))
        )
        for row in rows:
            row.not_before = row.found_at + timedelta(seconds=_RANDOM.uniform(0, delay))


def _waiting(store: ResponderStore, now: datetime) -> tuple[int, datetime | None]:
    with store.read() as session:
        due = session.execute(
            select(func.count(), func.min(Match.not_before)).where(
                Match.state == "pending", Match.not_before > now
            )
        ).one()
    count, first = due
    return int(count), _utc(first)


def owed(store: ResponderStore) -> int:
    with store.read() as session:
        rows = session.execute(
            select(Match.pings_due, Match.pings_sent).where(Match.state == "pending")
        )
        return sum(due - sent for due, sent in rows)


def _batches_owed(store: ResponderStore, now: datetime) -> list[SeenBatch]:
    with store.read() as session:
        pending = (
            select(Match.batch_id)
            .where(Match.state == "pending", Match.not_before <= now)
            .distinct()
        )
        return list(session.scalars(select(SeenBatch).where(SeenBatch.batch_id.in_(pending))))


def _send_batch(
    store: ResponderStore, batch: SeenBatch, config: PingConfig, report: PingReport, now: datetime
) -> None:
    if batch.status != "bound":
        problem = _check_binding(batch, config)
        if problem is not None and problem.transient:
            report.failures.append(f"batch {batch.batch_id}: {problem.text}")
            return
        _bind(store, batch, problem)
        if problem is not None:
            report.refused += _refuse(store, batch.batch_id)
            report.failures.append(f"batch {batch.batch_id}: no ping, {problem.text}")
            log.info("batch %s: no ping: %s", batch.batch_id, problem.text)
            return
    while True:
        group = _round(store, batch.batch_id, now)
        if not group:
            return
        answer = _deliver(store, batch, [m.proof for m in group], config, report)
        if answer.ok:
            _mark_sent(store, [m.id for m in group])
            report.delivered += len(group)
            continue
        report.failures.append(f"batch {batch.batch_id}: {answer.text}")
        if not answer.transient:
            report.refused += _refuse(store, batch.batch_id)
        return


def key_url(respond_http: str) -> str:
    """The key endpoint of a batch: its Respond-HTTP with the final
    ``/ping/TOKEN`` replaced by ``/key``, so a path prefix is kept
    (docs/scheme.md, "Key endpoint")."""
    base, _, _token = respond_http.rpartition("/ping/")
    return f"{base}/key"


def _check_binding(batch: SeenBatch, config: PingConfig) -> _Answer | None:
    """None when the batch's key endpoint (key_url) returns the batch's Key.

    A batch can name any host; without this check anyone could post batches
    that make responders flood a victim (reflection).
    """
    parts = urlsplit(batch.respond_http)
    url = key_url(batch.respond_http)
    # parse_article admits only http(s) Respond-HTTP URLs.
    answer = _http(urllib.request.Request(url), config)  # noqa: S310
    if answer.host_refused:
        return _Answer(False, False, f"no request to {parts.netloc}: {answer.text}", True)
    if not answer.ok:
        return _Answer(False, answer.transient, f"key check {url} failed: {answer.text}")
    try:
        served, retired = _served_keys(json.loads(answer.text))
    except (ValueError, KeyError, TypeError):
        return _Answer(False, False, f"key check {url}: answer holds no key")
    if served != batch.key and batch.key not in retired:
        return _Answer(
            False,
            False,
            f"key binding failed: {parts.netloc} serves key {keys.fingerprint(served)}, "
            f"the batch is signed by {keys.fingerprint(batch.key)}",
        )
    return None


def _served_keys(answer: object) -> tuple[bytes, list[bytes]]:
    """The current key, and the retired ones still bound to unexpired
    batches (docs/scheme.md, Key endpoint); a malformed retired entry is skipped."""
    if not isinstance(answer, dict):
        raise TypeError("not a JSON object")
    current = keys.decode_public(str(answer["key"]))
    retired = []
    listed = answer.get("retired")
    for entry in listed if isinstance(listed, list) else []:
        try:
            retired.append(keys.decode_public(str(entry["key"])))
        except (ValueError, KeyError, TypeError):
            continue
    return current, retired


def _bind(store: ResponderStore, batch: SeenBatch, problem: _Answer | None) -> None:
    status = "bound" if problem is None else "refused" if problem.host_refused else "forged"
    with store.write() as session:
        row = session.get(SeenBatch, batch.batch_id)
        assert row is not None
        row.status = status
        row.reason = problem.text if problem else None
    batch.status = status


def _refuse(store: ResponderStore, batch_id: str) -> int:
    with store.write() as session:
        rows = list(
            session.scalars(
                select(Match).where(Match.batch_id == batch_id, Match.state == "pending")
            )
        )
        for row in rows:
            row.state = "refused"
        return len(rows)


def _round(store: ResponderStore, batch_id: str, now: datetime) -> list[Match]:
    """Proofs due one more ping: escalated ones come round again until their due."""
    with store.read() as session:
        rows = session.scalars(
            select(Match)
            .where(
                Match.batch_id == batch_id,
                Match.state == "pending",
                Match.pings_sent < Match.pings_due,
                Match.not_before <= now,
            )
            .order_by(Match.id)
            .limit(MAX_PROOFS)
        )
        return list(rows)


def _mark_sent(store: ResponderStore, ids: Sequence[int]) -> None:
    with store.write() as session:
        for row in session.scalars(select(Match).where(Match.id.in_(ids))):
            row.pings_sent += 1
            if row.pings_sent >= row.pings_due:
                row.state = "done"


def _deliver(
    store: ResponderStore,
    batch: SeenBatch,
    proofs: list[bytes],
    config: PingConfig,
    report: PingReport,
) -> _Answer:
    """HTTP with retries; SMTP when HTTP keeps failing for a reason a retry may cure."""
    texts = [scheme.b64url(p) for p in proofs]
    body = json.dumps({"proofs": texts}).encode("ascii")
    request = urllib.request.Request(  # noqa: S310 - http(s) only, see parse_article
        batch.respond_http,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    answer = _with_retries(lambda: _http(request, config), config)
    _log(store, batch.batch_id, "http", len(proofs), answer)
    report.requests += 1
    if answer.ok or not answer.transient or not config.use_smtp:
        return answer
    try:
        hosts = _smtp_hosts(batch, config)
    except SmtpDomainRefused as refused:
        # Still owed: HTTP may answer on a later run.
        log.info("batch %s: SMTP skipped: %s", batch.batch_id, refused.message)
        return _Answer(False, True, f"{answer.text}; SMTP skipped: {refused.message}")
    answer = _with_retries(lambda: _smtp(batch.respond_smtp, hosts, texts, config), config)
    _log(store, batch.batch_id, "smtp", len(proofs), answer)
    report.requests += 1
    return answer


def _with_retries(attempt: Callable[[], _Answer], config: PingConfig) -> _Answer:
    answer = attempt()
    for n in range(config.retries):
        if answer.ok or not answer.transient:
            break
        config.sleep(config.backoff * 2**n)
        answer = attempt()
    return answer


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would let a batch's host send our request on to a third party."""

    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None


def _http(request: urllib.request.Request, config: PingConfig) -> _Answer:
    opens = dial.dialer(config.dns, config.proxy, allow_private=config.allow_private_http)
    opener = urllib.request.build_opener(_NoRedirects, *dial.handlers(opens))
    try:
        with opener.open(request, timeout=config.timeout) as response:
            text = response.read(MAX_ANSWER).decode("utf-8", "replace")
            return _Answer(True, False, text)
    except urllib.error.HTTPError as error:
        text = error.read(ANSWER_CHARS).decode("utf-8", "replace")
        transient = error.code in (408, 429) or error.code >= 500
        return _Answer(False, transient, f"HTTP {error.code}: {text.strip()}")
    except HttpHostRefused as refused:
        return _Answer(False, False, f"Respond-HTTP host refused: {refused.message}", True)
    except (urllib.error.URLError, OSError, proxy.PROXY_REFUSED) as error:
        reason = getattr(error, "reason", error)
        return _Answer(False, True, f"{request.full_url} unreachable: {reason}{_via(config)}")


def _smtp_hosts(batch: SeenBatch, config: PingConfig) -> list[tuple[str, int]]:
    """Where the SMTP ping may go; raises SmtpDomainRefused when nowhere.

    The domain must prove it is the key holder's even through a relay: the
    relay would deliver to it all the same.
    """
    name = batch.respond.domain
    resolver = domain.resolver(config.dns, config.proxy)
    domain.prove_domain(resolver, name, batch.key)
    if config.smtp_server is not None:
        return [config.smtp_server]
    return domain.mail_hosts(
        resolver, name, config.smtp_port, allow_private=config.allow_private_smtp
    )


def _smtp(
    mailbox: str, hosts: list[tuple[str, int]], proofs: list[str], config: PingConfig
) -> _Answer:
    """Try each host in order until one answers; a 5xx from one is final."""
    answer = _Answer(False, True, "no mail host")
    for host, port in hosts:
        answer = _smtp_to(host, port, mailbox, proofs, config)
        if answer.ok or not answer.transient:
            return answer
    return answer


def _smtp_to(host: str, port: int, mailbox: str, proofs: list[str], config: PingConfig) -> _Answer:
    message = EmailMessage()
    message["To"] = mailbox
    message["From"] = "DNI responder <responder@localhost>"
    message["Subject"] = "DNI opt-out"
    message.set_content("".join(f"DNI-Proof: {p}\n" for p in proofs))
    try:
        # Our HELO name is not the machine's: a ping should not say who sends it.
        with _smtp_client(config, host, port) as client:
            client.send_message(message, from_addr="", to_addrs=[mailbox])
    except smtplib.SMTPRecipientsRefused as error:
        code, said = next(iter(error.recipients.values()))
        return _Answer(False, code < 500, f"SMTP {code}: {said.decode('utf-8', 'replace')}")
    except smtplib.SMTPResponseException as error:
        raw = error.smtp_error
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return _Answer(False, error.smtp_code < 500, f"SMTP {error.smtp_code}: {text}")
    except (TimeoutError, smtplib.SMTPException, OSError, proxy.PROXY_REFUSED) as error:
        return _Answer(False, True, f"SMTP {host}:{port} unreachable: {error}{_via(config)}")
    return _Answer(True, False, "SMTP 250")


def _smtp_client(config: PingConfig, host: str, port: int) -> smtplib.SMTP:
    if config.proxy is not None:
        return proxy.ProxiedSMTP(config.proxy, host, port, HELO_NAME, config.timeout)
    return smtplib.SMTP(host, port, HELO_NAME, config.timeout)


def _via(config: PingConfig) -> str:
    return f" (through {config.proxy})" if config.proxy else ""


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands aggregates back naive; they are UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _log(store: ResponderStore, batch_id: str, channel: str, proofs: int, answer: _Answer) -> None:
    with store.write() as session:
        session.add(
            PingLog(
                batch_id=batch_id,
                channel=channel,
                proofs=proofs,
                ok=answer.ok,
                answer=answer.text[:MAX_ANSWER],
                sent_at=utcnow(),
            )
        )
