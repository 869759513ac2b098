"""The report documents as types: what build.py and ledger.py produce, what the
renderers read, what schema.json describes (tests/test_report_model.py checks
that every TypedDict here has exactly the members its schema object has).

TypedDicts, not dataclasses: a document *is* the JSON object that is signed,
so typing it must not change a byte of it (old signed files still verify).
"""

# No "from __future__ import annotations": TypedDict must see NotRequired itself.
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, TypeGuard, cast

FORMAT = "scrubber-compliance-report"
SUMMARY_FORMAT = "scrubber-compliance-summary"
LEDGER_FORMAT = "scrubber-ledger-report"

Verdict = Literal["met", "late", "pending"]


class Header(TypedDict):
    format: str
    version: int
    generator: str
    generated_at: str


class SpanHeader(Header):
    """The header of a summary or ledger report, which cover a period."""

    since: str | None


class OperatorJson(TypedDict):
    name: str | None
    contact: str | None


class Argon2(TypedDict):
    t: int
    m: int
    p: int


class SaltEpochJson(TypedDict):
    id: int
    salt: str


class BatchMeta(TypedDict):
    id: str
    lists: list[str]
    created_at: str
    expires_at: str
    scheme: str
    argon2: Argon2
    tag_length: int
    salt_epoch: SaltEpochJson
    key_public: str
    key_fingerprint: str
    newsgroup: str
    respond_http: str
    respond_smtp: str


class ListCount(TypedDict):
    list: str
    listed: int | None
    left_out: int | None
    in_batch: int | None


class PartItem(TypedDict):
    part: int
    message_id: str
    server: str | None
    posted_at: str | None
    count: int
    size: int
    first_tag: str
    last_tag: str


class Parts(TypedDict):
    total: int
    posted: int
    items: list[PartItem]


class Pings(TypedDict):
    total: int
    by_outcome: dict[str, int]
    by_channel: dict[str, dict[str, int]]
    first_received_at: str | None
    last_received_at: str | None


class Removal(TypedDict):
    ping_id: int
    address: str
    channel: str
    received_at: str
    suppressed_at: str | None
    source: str | None
    latency_seconds: float | None
    can_spam: Verdict
    gmail_yahoo: Verdict


class Suppressions(TypedDict):
    count: int
    pending: int
    items: list[Removal]


class Latency(TypedDict):
    count: int
    min: float | None
    median: float | None
    p99: float | None
    max: float | None


class DeadlineCheck(TypedDict):
    rule: str
    name: str
    limit: str
    checked: int
    met: int
    late: int
    pending: int
    ok: bool


class Invariant(TypedDict):
    check: str
    statement: str
    violations: int
    examples: list[str]
    ok: bool


class OtherItem(TypedDict):
    address: str
    channel: str
    reason: str
    received_at: str
    suppressed_at: str


class OtherSuppressions(TypedDict):
    count: int
    by_channel: dict[str, int]
    by_reason: dict[str, int]
    items: list[OtherItem]


class Bucket(TypedDict):
    start: str
    seconds: int
    accepted: int
    other: int
    suppressed: int


class Signature(TypedDict):
    algorithm: str
    key: str
    key_fingerprint: str
    value: str
    canonicalization: NotRequired[str]  # absent on version 1 reports


class BatchReport(TypedDict):
    """A batch report. Members marked NotRequired came later: reports made by
    earlier versions lack them, and the renderers show such reports too."""

    report: Header
    operator: NotRequired[OperatorJson]
    batch: BatchMeta
    addresses_hashed: int
    left_out_suppressed: NotRequired[int | None]
    list_counts: NotRequired[list[ListCount]]
    parts: Parts
    pings: Pings
    suppressions: Suppressions
    latency_seconds: Latency
    deadlines: list[DeadlineCheck]
    other_suppressions: NotRequired[OtherSuppressions]
    invariants: list[Invariant]
    timeline: list[Bucket]
    ok: bool
    signature: NotRequired[Signature]


class SummaryRowJson(TypedDict):
    """One batch in a summary; also the summary's CSV columns, in this order."""

    batch: str
    created_at: str
    lists: str
    addresses_hashed: int
    parts_posted: int
    parts_total: int
    pings: int
    accepted: int
    suppressed: int
    pending: int
    latency_max_seconds: float | None
    can_spam_ok: bool
    gmail_yahoo_ok: bool
    invariants_ok: bool
    ok: bool


class SummaryReport(TypedDict):
    report: SpanHeader
    operator: NotRequired[OperatorJson]
    batches: list[SummaryRowJson]
    ok: bool
    signature: NotRequired[Signature]


class LedgerCounts(TypedDict):
    count: int
    by_channel: dict[str, int]
    by_reason: dict[str, int]
    by_origin: dict[str, int]


class Clocks(TypedDict):
    commit_seconds: Latency
    stop_seconds: Latency


class LedgerCheck(DeadlineCheck):
    """A ledger rule's counts: a batch report's, and the requests it does not judge."""

    not_judged: int


class LedgerItem(TypedDict):
    address: str
    channel: str
    reason: str
    origin: str | None
    received_at: str
    committed_at: str
    commit_seconds: float
    stopped_at: str | None
    stopped_by: str | None
    stop_seconds: float | None
    deadlines: dict[str, str]


class LedgerReport(TypedDict):
    report: SpanHeader
    operator: OperatorJson
    suppressions: LedgerCounts
    lifted: int
    clocks: Clocks
    deadlines: list[LedgerCheck]
    items: list[LedgerItem]
    ok: bool
    signature: NotRequired[Signature]


Document = BatchReport | SummaryReport | LedgerReport


def is_summary(document: Document) -> TypeGuard[SummaryReport]:
    return document["report"]["format"] == SUMMARY_FORMAT


def is_ledger(document: Document) -> TypeGuard[LedgerReport]:
    return document["report"]["format"] == LEDGER_FORMAT


def is_batch(document: Document) -> TypeGuard[BatchReport]:
    return document["report"]["format"] == FORMAT


def as_json(document: Mapping[str, object]) -> dict[str, Any]:
    """A document as the plain JSON value serialisers take (the type changes, not the data)."""
    return cast(dict[str, Any], document)
