"""The human-readable layout shared by the text, Markdown and HTML renderers.

A report document becomes a list of titled sections, each a key/value list
or a table of strings; each renderer only chooses the syntax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scrubber.report.build import CHANNELS, OUTCOMES, SUMMARY_FORMAT


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


def title(document: dict[str, Any]) -> str:
    if document["report"]["format"] == SUMMARY_FORMAT:
        return "scrubber compliance summary"
    return f"scrubber compliance report: batch {document['batch']['id']}"


def sections(document: dict[str, Any]) -> list[Section]:
    if document["report"]["format"] == SUMMARY_FORMAT:
        return [_summary_table(document), *_signature(document)]
    return [
        _overview(document),
        _batch(document),
        _parts(document),
        _pings(document),
        _latency(document),
        _deadlines(document),
        _invariants(document),
        _suppressed(document),
        *_signature(document),
    ]


def _kv(title_: str, pairs: list[tuple[str, str]], key: str) -> Section:
    return Section(title_, ("item", "value"), list(pairs), keyvalue=True, key=key)


def _batch(doc: dict[str, Any]) -> Section:
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
            ("newsgroup", b["newsgroup"]),
            ("respond (HTTP)", b["respond_http"]),
            ("respond (SMTP)", b["respond_smtp"]),
            ("report generated", when(doc["report"]["generated_at"])),
        ],
        "batch",
    )


def _overview(doc: dict[str, Any]) -> Section:
    parts = doc["parts"]
    return _kv(
        "Summary",
        [
            ("addresses hashed", f"{doc['addresses_hashed']:,}"),
            ("parts posted", f"{parts['posted']} of {parts['total']}"),
            ("pings received", f"{doc['pings']['total']:,}"),
            ("accepted opt-outs", f"{doc['pings']['by_outcome']['accepted']:,}"),
            ("addresses suppressed", f"{doc['suppressions']['count']:,}"),
            ("awaiting suppression", f"{doc['suppressions']['pending']:,}"),
            ("result", verdict(doc["ok"])),
        ],
        "summary",
    )


def _parts(doc: dict[str, Any]) -> Section:
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


def _pings(doc: dict[str, Any]) -> Section:
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


def _latency(doc: dict[str, Any]) -> Section:
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


def _deadlines(doc: dict[str, Any]) -> Section:
    rows = [
        (
            d["name"],
            d["limit"],
            f"{d['checked']:,}",
            f"{d['met']:,}",
            f"{d['late']:,}",
            f"{d['pending']:,}",
            verdict(d["ok"]),
        )
        for d in doc["deadlines"]
    ]
    columns = ("rule", "limit", "checked", "met", "late", "pending", "result")
    return Section("Deadline checks", columns, rows, key="deadlines")


def _invariants(doc: dict[str, Any]) -> Section:
    rows = [
        (i["statement"], verdict(i["ok"]), f"{i['violations']:,}", ", ".join(i["examples"]) or "-")
        for i in doc["invariants"]
    ]
    columns = ("invariant", "result", "violations", "examples")
    return Section("Invariants", columns, rows, key="invariants")


def _suppressed(doc: dict[str, Any]) -> Section:
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


def _summary_table(doc: dict[str, Any]) -> Section:
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


def _signature(doc: dict[str, Any]) -> list[Section]:
    block = doc.get("signature")
    if not isinstance(block, dict):
        return []
    return [
        _kv(
            "Signature",
            [
                ("algorithm", "Ed25519 over the canonical JSON"),
                ("key fingerprint", str(block.get("key_fingerprint"))),
                ("verify with", "scrubber report verify FILE"),
            ],
            "signature",
        )
    ]
