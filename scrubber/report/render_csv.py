"""CSV for spreadsheets (layout in docs/report.md).

A batch report has one row per ping outcome class (``record=pings``: channel,
outcome, count) and one row per suppression (``record=suppression``); a
summary has one row per batch. Unsigned: verify the JSON or HTML form.
"""

from __future__ import annotations

import csv
import io

from scrubber.report.build import OUTCOMES
from scrubber.report.model import (
    BatchReport,
    Document,
    LedgerReport,
    SummaryReport,
    SummaryRowJson,
    is_batch,
    is_ledger,
    is_summary,
)

BATCH_COLUMNS = (
    "record",
    "batch",
    "channel",
    "outcome",
    "count",
    "ping_id",
    "address",
    "received_at",
    "suppressed_at",
    "latency_seconds",
    "can_spam",
    "gmail_yahoo",
)
SUMMARY_COLUMNS = tuple(SummaryRowJson.__annotations__)
LEDGER_COLUMNS = (
    "address",
    "channel",
    "reason",
    "origin",
    "received_at",
    "committed_at",
    "commit_seconds",
    "stopped_at",
    "stopped_by",
    "stop_seconds",
)


def render_csv(document: Document) -> str:
    if is_summary(document):
        return _summary(document)
    if is_ledger(document):
        return _ledger(document)
    assert is_batch(document)
    return _batch(document)


def _summary(document: SummaryReport) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in document["batches"]:
        cells = dict(row)  # the TypedDict as a plain mapping, to take its columns by name
        writer.writerow({k: _cell(cells[k]) for k in SUMMARY_COLUMNS})
    return out.getvalue()


def _batch(document: BatchReport) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, BATCH_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    batch = document["batch"]["id"]
    for channel, counts in document["pings"]["by_channel"].items():
        for outcome in OUTCOMES:
            writer.writerow(
                {
                    "record": "pings",
                    "batch": batch,
                    "channel": channel,
                    "outcome": outcome,
                    "count": counts[outcome],
                }
            )
    for item in document["suppressions"]["items"]:
        cells = dict(item)
        row = {k: _cell(cells[k]) for k in BATCH_COLUMNS if k in cells}
        writer.writerow({**row, "record": "suppression", "batch": batch, "outcome": "accepted"})
    return out.getvalue()


def _ledger(document: LedgerReport) -> str:
    """One row per suppression, then one column per deadline rule (its verdict)."""
    out = io.StringIO()
    rules = [d["rule"] for d in document["deadlines"]]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*LEDGER_COLUMNS, *rules])
    for item in document["items"]:
        cells = dict(item)
        writer.writerow(
            [*(_cell(cells[k]) for k in LEDGER_COLUMNS), *(item["deadlines"][r] for r in rules)]
        )
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
