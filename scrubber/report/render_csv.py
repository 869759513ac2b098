"""CSV for spreadsheets (layout in docs/report.md).

A batch report has one row per ping outcome class (``record=pings``: channel,
outcome, count) and one row per suppression (``record=suppression``); a
summary has one row per batch. Unsigned: verify the JSON or HTML form.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from scrubber.report.build import LEDGER_FORMAT, OUTCOMES, SUMMARY_FORMAT, SummaryRow

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
SUMMARY_COLUMNS = tuple(SummaryRow.__dataclass_fields__)
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


def render_csv(document: dict[str, Any]) -> str:
    out = io.StringIO()
    if document["report"]["format"] == SUMMARY_FORMAT:
        writer = csv.DictWriter(out, SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(row[k]) for k in SUMMARY_COLUMNS} for row in document["batches"])
        return out.getvalue()
    if document["report"]["format"] == LEDGER_FORMAT:
        return _ledger(document)
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
        row = {k: _cell(item.get(k)) for k in BATCH_COLUMNS if k in item}
        writer.writerow({**row, "record": "suppression", "batch": batch, "outcome": "accepted"})
    return out.getvalue()


def _ledger(document: dict[str, Any]) -> str:
    """One row per suppression, then one column per deadline rule (its verdict)."""
    out = io.StringIO()
    rules = [d["rule"] for d in document["deadlines"]]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*LEDGER_COLUMNS, *rules])
    for item in document["items"]:
        cells = [_cell(item[k]) for k in LEDGER_COLUMNS]
        writer.writerow([*cells, *(item["deadlines"][rule] for rule in rules)])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
