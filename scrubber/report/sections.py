"""The human-readable layout shared by the text, Markdown and HTML renderers.

A report document becomes a list of titled sections, each a key/value list
or a table of strings; each renderer only chooses the syntax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from scrubber.report.build import CHANNELS, OUTCOMES
from scrubber.report.model import (
    BatchReport,
    DeadlineCheck,
    Document,
    LedgerReport,
    Pings,
    SummaryReport,
    is_batch,
    is_ledger,
    is_summary,
)


@dataclass(frozen=True)
class Section:
    title: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    keyvalue: bool = False
    note: str | None = None
    key: str = field(default="", compare=False)


def duration(value: float | None) -> str:
    """Seconds as a short human duration: 0.250 s, 3 min 4 s, 2 h 5 min, 1 d 3 h."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.3f} s"
    whole = int(value)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def when(value: str | None, zone: bool = True) -> str:
    """An ISO timestamp shortened to the second, or a dash."""
    if value is None:
        return "-"
    return value[:19].replace("T", " ") + (" UTC" if zone else "")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def title(document: Document) -> str:
    if is_summary(document):
        return "scrubber compliance summary"
    if is_ledger(document):
        since = document["report"]["since"]
        return "scrubber ledger report" + (f" since {when(since)}" if since else "")
    assert is_batch(document)
    return f"scrubber compliance report: batch {document['batch']['id']}"


def sections(document: Document) -> list[Section]:
    if is_summary(document):
        sender = _kv("Sender", _operator(document), "operator")
        return [sender, _summary_table(document), *_signature(document)]
    if is_ledger(document):
        return [*ledger_sections(document), *_signature(document)]
    assert is_batch(document)
    return [
        _overview(document),
        _batch(document),
        *_lists(document),
        _parts(document),
        _pings(document),
        _latency(document),
        _deadlines(document),
        _invariants(document),
        _suppressed(document),
        *_other_suppressions(document),
        *_signature(document),
    ]


def _kv(title_: str, pairs: list[tuple[str, str]], key: str) -> Section:
    return Section(title_, ("item", "value"), list(pairs), keyvalue=True, key=key)


def _batch(doc: BatchReport) -> Section:
    b = doc["batch"]
    argon = b["argon2"]
    return _kv(
        "Batch",
        [
            ("batch", b["id"]),
            ("lists", ", ".join(b["lists"]) or "-"),
            ("created", when(b["created_at"])),
            ("expires", when(b["expires_at"])),
            ("scheme", b["scheme"]),
            ("Argon2id", f"t={argon['t']} m={argon['m']} KiB p={argon['p']}"),
            ("tag length", f"{b['tag_length']} bytes"),
            ("salt epoch", f"{b['salt_epoch']['id']} (salt {b['salt_epoch']['salt']})"),
            ("key fingerprint", b["key_fingerprint"]),
            ("public key (Ed25519, base64)", b["key_public"]),
            ("newsgroup", b["newsgroup"]),
            ("respond (HTTP)", b["respond_http"]),
            ("respond (SMTP)", b["respond_smtp"]),
            ("report generated", when(doc["report"]["generated_at"])),
        ],
        "batch",
    )


# What each ping outcome other than "accepted" means, for the summary.
NOT_ACCEPTED = {
    "duplicate": "proof accepted before, sent again",
    "invalid": "proof matching no address of this batch",
    "unknown-batch": "response address of no batch",
    "rate-limited": "refused: the client sent too many",
}


def _overview(doc: BatchReport) -> Section:
    parts = doc["parts"]
    pings = doc["pings"]
    rows = [
        *_operator(doc),
        ("addresses hashed", f"{doc['addresses_hashed']:,}"),
        *_left_out(doc),
        ("parts posted", f"{parts['posted']} of {parts['total']}"),
        ("pings received", f"{pings['total']:,}"),
        ("accepted opt-outs", f"{pings['by_outcome']['accepted']:,}"),
        ("not accepted", _not_accepted(pings)),
        ("addresses suppressed", f"{doc['suppressions']['count']:,}"),
        ("awaiting suppression", f"{doc['suppressions']['pending']:,}"),
        ("result", verdict(doc["ok"])),
    ]
    note = (
        "Pings received counts every proof sent for this batch; an accepted one names an "
        "address of the batch and suppresses it, the others name none (see 'not accepted')."
    )
    return replace(_kv("Summary", rows, "summary"), note=note)


def _operator(doc: Document) -> list[tuple[str, str]]:
    operator = doc.get("operator")
    name, contact = (operator["name"], operator["contact"]) if operator else (None, None)
    return [
        ("operator", name or "not set (operator_name in scrubber.toml)"),
        ("contact", contact or "not set (operator_contact in scrubber.toml)"),
    ]


def _left_out(doc: BatchReport) -> list[tuple[str, str]]:
    if "left_out_suppressed" not in doc:
        return []
    count = doc["left_out_suppressed"]
    shown = "not recorded (an older batch)" if count is None else f"{count:,}"
    return [("left out, already suppressed", shown)]


def _not_accepted(pings: Pings) -> str:
    others = [(o, n) for o, n in pings["by_outcome"].items() if o != "accepted" and n]
    if not others:
        return "0"
    total = sum(n for _, n in others)
    detail = "; ".join(f"{n:,} {o} ({NOT_ACCEPTED.get(o, o)})" for o, n in others)
    return f"{total:,}: {detail}"


def _lists(doc: BatchReport) -> list[Section]:
    if "list_counts" not in doc:
        return []
    rows = [
        (item["list"], _maybe(item["listed"]), _maybe(item["left_out"]), _maybe(item["in_batch"]))
        for item in doc["list_counts"]
    ]
    unknown = any(item["listed"] is None for item in doc["list_counts"])
    note = "counts not recorded for batches made before scrubber recorded them" if unknown else None
    columns = ("list", "addresses then", "left out (already suppressed)", "in the batch")
    return [Section("Lists in this batch", columns, rows, note=note, key="lists")]


def _maybe(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _parts(doc: BatchReport) -> Section:
    rows = [
        (
            str(p["part"]),
            p["message_id"],
            p["server"] or "-",
            when(p["posted_at"], zone=False),
            f"{p['count']:,}",
            f"{p['size']:,}",
        )
        for p in doc["parts"]["items"]
    ]
    note = None if rows else "no parts recorded yet (run 'scrubber batch post')"
    columns = ("part", "Message-ID", "server", "posted (UTC)", "tags", "bytes")
    return Section("Parts posted", columns, rows, note=note, key="parts")


def _pings(doc: BatchReport) -> Section:
    by_channel = doc["pings"]["by_channel"]
    channels = list(CHANNELS) + sorted(set(by_channel) - set(CHANNELS))
    rows = [
        (c, *(f"{by_channel[c][o]:,}" for o in OUTCOMES), f"{sum(by_channel[c].values()):,}")
        for c in channels
    ]
    by_outcome = doc["pings"]["by_outcome"]
    rows.append(("all", *(f"{by_outcome[o]:,}" for o in OUTCOMES), f"{doc['pings']['total']:,}"))
    note = None if doc["pings"]["total"] else "no pings received yet"
    return Section(
        "Pings by channel and outcome",
        ("channel", *OUTCOMES, "total"),
        rows,
        note=note,
        key="pings",
    )


def _latency(doc: BatchReport) -> Section:
    lat = doc["latency_seconds"]
    return _kv(
        "Removal latency (ping received to suppression committed)",
        [
            ("suppressions measured", f"{lat['count']:,}"),
            ("min", duration(lat["min"])),
            ("median", duration(lat["median"])),
            ("p99", duration(lat["p99"])),
            ("max", duration(lat["max"])),
        ],
        "latency",
    )


def _deadline_row(check: DeadlineCheck, *extra: int) -> tuple[str, ...]:
    """A rule's counts as a table row; ``extra`` counts go before the verdict."""
    counts = (check["checked"], check["met"], check["late"], check["pending"], *extra)
    return (check["name"], check["limit"], *(f"{n:,}" for n in counts), verdict(check["ok"]))


def _deadlines(doc: BatchReport) -> Section:
    rows = [_deadline_row(d) for d in doc["deadlines"]]
    columns = ("rule", "limit", "checked", "met", "late", "pending", "result")
    return Section("Deadline checks", columns, rows, key="deadlines")


def _invariants(doc: BatchReport) -> Section:
    rows = [
        (i["statement"], verdict(i["ok"]), f"{i['violations']:,}", ", ".join(i["examples"]) or "-")
        for i in doc["invariants"]
    ]
    columns = ("invariant", "result", "violations", "examples")
    return Section("Invariants", columns, rows, key="invariants")


def _suppressed(doc: BatchReport) -> Section:
    rows = [
        (
            str(s["ping_id"]),
            s["address"],
            s["channel"],
            when(s["received_at"], zone=False),
            when(s["suppressed_at"], zone=False),
            duration(s["latency_seconds"]),
            s["can_spam"],
            s["gmail_yahoo"],
        )
        for s in doc["suppressions"]["items"]
    ]
    columns = ("ping", "address", "channel", "received (UTC)", "suppressed (UTC)", "latency")
    note = None if rows else "no address suppressed through this batch yet"
    return Section(
        "Suppressed addresses (masked)",
        (*columns, "CAN-SPAM", "Gmail/Yahoo"),
        rows,
        note=note,
        key="suppressed",
    )


def _other_suppressions(doc: BatchReport) -> list[Section]:
    other = doc.get("other_suppressions")
    if other is None:
        return []
    rows = [
        (
            s["address"],
            s["channel"],
            s["reason"],
            when(s["received_at"], zone=False),
            when(s["suppressed_at"], zone=False),
        )
        for s in other["items"]
    ]
    counts = ", ".join(f"{n:,} {c}" for c, n in other["by_channel"].items())
    note = f"{other['count']:,} in all" + (f": {counts}" if counts else "")
    if other["count"] > len(rows):
        note += f"; the first {len(rows):,} are listed"
    columns = ("address", "channel", "reason", "received (UTC)", "suppressed (UTC)")
    title_ = "Suppressed by other means while the batch was out (masked)"
    return [Section(title_, columns, rows, note=note, key="other-suppressions")]


def _summary_table(doc: SummaryReport) -> Section:
    rows = [
        (
            r["batch"],
            when(r["created_at"], zone=False),
            r["lists"],
            f"{r['addresses_hashed']:,}",
            f"{r['parts_posted']}/{r['parts_total']}",
            f"{r['pings']:,}",
            f"{r['suppressed']:,}",
            duration(r["latency_max_seconds"]),
            verdict(r["ok"]),
        )
        for r in doc["batches"]
    ]
    columns = ("batch", "created (UTC)", "lists", "hashed", "parts", "pings", "suppressed")
    since = doc["report"]["since"]
    note = f"batches created since {when(since)}" if since else "all batches"
    return Section("Batches", (*columns, "max latency", "result"), rows, note=note, key="batches")


def _signature(doc: Document) -> list[Section]:
    block = doc.get("signature")
    if not isinstance(block, dict):
        return []
    return [
        _kv(
            "Signature",
            [
                ("algorithm", "Ed25519 over the canonical JSON"),
                ("key fingerprint", str(block.get("key_fingerprint"))),
                ("public key (Ed25519, base64)", str(block.get("key"))),
                ("verify with", "scrubber report verify FILE (or docs/report.md, no scrubber)"),
            ],
            "signature",
        )
    ]


# -- the ledger report --------------------------------------------------------


def ledger_sections(doc: LedgerReport) -> list[Section]:
    counts = doc["suppressions"]
    return [
        _ledger_overview(doc),
        _tally("Suppressions by channel", "channel", counts["by_channel"], "by-channel"),
        _tally("Suppressions by reason", "reason", counts["by_reason"], "by-reason"),
        _tally("Suppressions by origin", "origin", counts["by_origin"], "by-origin"),
        _clocks(doc),
        _ledger_deadlines(doc),
        _ledger_items(doc),
    ]


def _ledger_overview(doc: LedgerReport) -> Section:
    since = doc["report"]["since"]
    rows = [
        *_operator(doc),
        ("suppressions committed", f"{doc['suppressions']['count']:,}"),
        ("since", when(since) if since else "the beginning"),
        ("manual suppressions lifted", f"{doc['lifted']:,}"),
        ("report generated", when(doc["report"]["generated_at"])),
        ("result", verdict(doc["ok"])),
    ]
    note = (
        "Sending stopped at the first list export or batch, started after the commit, of a "
        "list holding the address (at the commit for an address on no list). Deadlines are "
        "judged on that clock; imported requests, received by another system, are not judged."
    )
    return replace(_kv("Summary", rows, "summary"), note=note)


def _tally(title_: str, column: str, counts: dict[str, int], key: str) -> Section:
    rows = [(name, f"{n:,}") for name, n in counts.items()]
    note = None if rows else "no suppressions"
    return Section(title_, (column, "suppressions"), rows, note=note, key=key)


def _clocks(doc: LedgerReport) -> Section:
    commit, stop = doc["clocks"]["commit_seconds"], doc["clocks"]["stop_seconds"]
    rows = [
        (name, f"{c['count']:,}", *(duration(c[k]) for k in ("min", "median", "p99", "max")))
        for name, c in (("received to committed", commit), ("received to sending stopped", stop))
    ]
    columns = ("clock", "measured", "min", "median", "p99", "max")
    return Section("Deadline clocks", columns, rows, key="clocks")


def _ledger_deadlines(doc: LedgerReport) -> Section:
    rows = [_deadline_row(d, d["not_judged"]) for d in doc["deadlines"]]
    columns = ("rule", "limit", "checked", "met", "late", "pending", "not judged", "result")
    note = "the rules: the deadlines table of scrubber.toml (scrubber.deadlines)"
    return Section("Deadline checks (sending stopped)", columns, rows, note=note, key="deadlines")


def _ledger_items(doc: LedgerReport) -> Section:
    names = [d["rule"] for d in doc["deadlines"]]
    rows = [
        (
            i["address"],
            i["channel"],
            i["reason"],
            i["origin"] or "-",
            when(i["received_at"], zone=False),
            when(i["committed_at"], zone=False),
            when(i["stopped_at"], zone=False),
            i["stopped_by"] or "not yet",
            *(i["deadlines"][name] for name in names),
        )
        for i in doc["items"]
    ]
    columns = ("address", "channel", "reason", "origin", "received (UTC)", "committed (UTC)")
    note = None if rows else "no suppressions in this period"
    return Section(
        "Suppressions (masked)",
        (*columns, "sending stopped (UTC)", "stopped by", *names),
        rows,
        note=note,
        key="items",
    )
