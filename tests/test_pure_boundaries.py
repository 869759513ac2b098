"""Boundary tests for the pure modules (scheme, rate limits, deadlines): each
pins a value or a comparison that a single-token change would alter.
`make mutate` measures how many such changes the tests notice."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from scrubber import deadlines, scheme
from scrubber.deadlines import RULES, add_business_days
from scrubber.listener import ratelimit
from scrubber.listener.ping import MAX_PROOFS
from scrubber.listener.ratelimit import (
    SMALL_REQUEST,
    Admission,
    Limits,
    RateLimiter,
    client_key,
)

# -- scheme ----------------------------------------------------------------------


def test_default_parameters_are_the_published_ones() -> None:
    assert scheme.Params() == scheme.Params(t=2, m=1024, p=1, tag_length=8)
    assert [f.default for f in dataclasses.fields(scheme.Params)] == [2, 1024, 1, 8]


@pytest.mark.parametrize(
    ("t", "m", "p", "tag_length", "ok"),
    [
        (1, 8, 1, 8, True),  # m = 8·p is allowed
        (1, 7, 1, 8, False),
        (1, 16, 2, 8, True),
        (1, 15, 2, 8, False),
        (0, 1024, 1, 8, False),
        (1, 1024, 0, 8, False),
        (1, 1024, 1, 4, True),
        (1, 1024, 1, 3, False),
        (1, 1024, 1, 16, True),
        (1, 1024, 1, 17, False),
    ],
)
def test_parameter_bounds(t: int, m: int, p: int, tag_length: int, ok: bool) -> None:
    if ok:
        scheme.Params(t=t, m=m, p=p, tag_length=tag_length)
    else:
        with pytest.raises(ValueError):
            scheme.Params(t=t, m=m, p=p, tag_length=tag_length)


def test_response_domain_is_what_follows_the_mailboxs_last_at_sign() -> None:
    to = scheme.RespondTo(
        http="https://dni.shop.example/dni/v1/ping/t", smtp="dni-t@dni.shop.example"
    )
    assert to.domain == "dni.shop.example"
    assert scheme.RespondTo(http="h", smtp="a@b@c.example").domain == "c.example"
    assert to == scheme.RespondTo(to.http, to.smtp) != scheme.RespondTo(to.http, "dni-t@x.example")


def test_address_length_boundary_is_254_octets() -> None:
    def address(third: int) -> str:
        return "a" * 64 + "@" + ".".join(["b" * 63, "b" * 63, "b" * third, "com"])

    exact = address(254 - 64 - 1 - 63 - 63 - 2 - 4)
    assert len(exact.encode()) == 254
    assert scheme.canonicalize(exact) == exact
    assert scheme.try_canonicalize(address(254 - 64 - 1 - 63 - 63 - 2 - 4 + 1)) is (
        scheme.Reject.TOO_LONG
    )
    assert scheme.try_canonicalize("a" * 65 + "@example.com") is scheme.Reject.LOCAL_TOO_LONG
    assert scheme.canonicalize("a" * 64 + "@example.com") == "a" * 64 + "@example.com"


@pytest.mark.parametrize(
    ("address", "reject"),
    [
        ("jo\x7fhn@example.com", scheme.Reject.CONTROL),  # DEL
        ("jo\x80hn@example.com", scheme.Reject.CONTROL),  # first C1 control
        ("jo\x9fhn@example.com", scheme.Reject.CONTROL),  # last C1 control
        ("jo\x85hn@example.com", scheme.Reject.WHITESPACE),  # NEL is White_Space first
        ("jo\x1fhn@example.com", scheme.Reject.CONTROL),
        ("user@xn--ls8h.la", scheme.Reject.BAD_DOMAIN),  # Punycode, but not IDNA 2008
        ("user@xn--bcher-kva.xn--abc", scheme.Reject.BAD_DOMAIN),
    ],
)
def test_controls_and_a_label_round_trip(address: str, reject: scheme.Reject) -> None:
    assert scheme.try_canonicalize(address) is reject


def test_the_first_character_after_del_and_c1_is_an_ordinary_one() -> None:
    assert scheme.canonicalize("jo\xa1hn@example.com") == "jo\xa1hn@example.com"
    assert scheme.canonicalize("jo~hn@example.com") == "jo~hn@example.com"


@pytest.mark.parametrize("text", ["A", "AAAAA", "AA===", "A+/A", "AA=A", "\x00"])
def test_from_b64url_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        scheme.from_b64url(text)


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("", b""),
        ("AA", b"\x00"),
        ("AA==", b"\x00"),
        ("AAA", b"\x00\x00"),
        ("AAA=", b"\x00\x00"),
        ("-_-_", b"\xfb\xff\xbf"),
        (" AAAA\n", b"\x00\x00\x00"),  # surrounding white space is ignored
    ],
)
def test_from_b64url_accepts(text: str, raw: bytes) -> None:
    assert scheme.from_b64url(text) == raw


def test_mask_keeps_only_the_domain_after_the_last_at() -> None:
    assert scheme.mask("a@b@example.com") == "a***@example.com"
    assert scheme.mask("@example.com") == "***@example.com"


def test_gcs_parameters_bounds_and_defaults() -> None:
    assert scheme.Gcs() == scheme.Gcs(p=19, m=784931)
    assert scheme.Gcs(1, 1) != scheme.Gcs(32, 2**32 - 1)  # both ends allowed
    for p, m in [(0, 1), (33, 1), (1, 0), (1, 2**32), (0, 0)]:
        with pytest.raises(ValueError) as raised:
            scheme.Gcs(p, m)
        assert str(raised.value) == f"invalid GCS parameters P={p} M={m}"


H = bytes(range(32))
NONCE = bytes(range(16))


def test_item_hash_and_value_vectors() -> None:
    assert scheme.item_hash(H, NONCE) == 6848136400307385146
    assert scheme.item_value(H, NONCE, 1, scheme.Gcs()) == 291396
    assert scheme.item_value(H, NONCE, scheme.MAX_TOTAL, scheme.Gcs()) == 1251537946885949
    assert scheme.item_bytes(291396) == b"\x00\x00\x00\x00\x00\x04\x72\x44"


@pytest.mark.parametrize(("h", "nonce"), [(H, NONCE[:15]), (H[:31], NONCE), (H + b"x", NONCE)])
def test_item_hash_wants_16_and_32_octets(h: bytes, nonce: bytes) -> None:
    with pytest.raises(ValueError) as raised:
        scheme.item_hash(h, nonce)
    assert str(raised.value) == "nonce must be 16 and H 32 octets"


@pytest.mark.parametrize("total", [0, scheme.MAX_TOTAL + 1])
def test_item_value_total_bounds(total: int) -> None:
    with pytest.raises(ValueError) as raised:
        scheme.item_value(H, NONCE, total, scheme.Gcs())
    assert str(raised.value) == "Total must be 1..4294967295"


def test_gcs_encode_edges() -> None:
    assert scheme.gcs_encode([], 0, 19) == b""
    assert scheme.gcs_encode([5], 0, 2) == b"\x90"  # 1 0 01, padded
    with pytest.raises(ValueError) as raised:
        scheme.gcs_encode([4], 5, 2)
    assert str(raised.value) == "values must be ascending and not below start"


@pytest.mark.parametrize(
    ("data", "count", "p", "values"),
    [
        (b"\x90", 1, 2, [5]),
        (b"\x00", 1, 7, [0]),  # Count·(P+1) exactly the bits; the last remainder ends the data
        (b"\x00", 1, 1, [0]),  # six zero bits of padding
        (b"\x00\x01", 2, 7, [0, 1]),
    ],
)
def test_gcs_decode_accepts(data: bytes, count: int, p: int, values: list[int]) -> None:
    assert scheme.gcs_decode(data, count, 0, p) == values


@pytest.mark.parametrize(
    ("data", "count", "p", "message"),
    [
        (b"", 0, 1, "GCS is too short for Count=0"),
        (b"\x00", 0, 1, "GCS is too short for Count=0"),
        (b"\x00", 1, 8, "GCS is too short for Count=1"),  # 9 bits wanted, 8 held
        (b"\x00\x00", 1, 19, "GCS is too short for Count=1"),
        (b"\xff", 1, 1, "GCS ends after 0 of Count=1 values"),  # no terminating zero
        (b"\x00\x80", 2, 7, "GCS ends after 1 of Count=2 values"),  # remainder cut short
        (b"\x00\xfe", 2, 7, "GCS ends after 1 of Count=2 values"),
        (b"\x00\x00", 2, 7, "GCS values are not strictly ascending"),
        (b"\x00\x00", 1, 1, "GCS holds more than Count=1 values"),  # 14 zero bits left
        (b"\x00\x00", 1, 7, "GCS holds more than Count=1 values"),  # exactly 8 left
        (b"\x01", 1, 1, "GCS holds more than Count=1 values"),  # a one-bit in the padding
    ],
)
def test_gcs_decode_refuses(data: bytes, count: int, p: int, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        scheme.gcs_decode(data, count, 0, p)
    assert str(raised.value) == message


# -- rate limits ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(per_minute: int) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(per_minute, clock=clock), clock


def test_capacity_is_a_minute_but_at_least_one_full_request() -> None:
    assert RateLimiter(60).capacity == MAX_PROOFS
    assert RateLimiter(MAX_PROOFS + 1).capacity == MAX_PROOFS + 1


def test_zero_is_no_limit_and_one_is_a_limit() -> None:
    free, _ = limiter(0)
    assert all(free.allow("k", MAX_PROOFS) for _ in range(5))
    assert free.level("k") == free.capacity
    free.charge("k", 10**6)
    assert free.level("k") == free.capacity
    assert not free._buckets  # an unlimited limiter keeps no state
    tight, _ = limiter(1)
    assert tight.allow("k", MAX_PROOFS)
    assert tight.level("k") == 0
    assert not tight.allow("k", 1)
    tight.charge("j", 5)
    assert tight.level("j") == MAX_PROOFS - 5


def test_the_default_cost_is_one_proof() -> None:
    bucket, _ = limiter(60)
    assert bucket.allow("k", MAX_PROOFS - 1)
    assert bucket.allow("k")
    assert not bucket.allow("k")


def test_refill_is_per_minute_over_sixty_seconds() -> None:
    bucket, clock = limiter(60)  # one proof a second
    assert bucket.allow("k", MAX_PROOFS)
    assert not bucket.allow("k", 1)
    clock.now += 1
    assert bucket.allow("k", 1)
    assert not bucket.allow("k", 1)
    clock.now += 10
    assert bucket.level("k") == pytest.approx(10)
    assert bucket.allow("k", 10)
    assert not bucket.allow("k", 1)


def test_cost_exactly_the_level_is_allowed() -> None:
    bucket, _ = limiter(60)
    assert bucket.allow("k", MAX_PROOFS - 3)
    assert not bucket.allow("k", 4)
    assert bucket.allow("k", 3)


def test_refill_never_exceeds_capacity() -> None:
    bucket, clock = limiter(60)
    bucket.charge("k", 5)
    clock.now += 10**6
    assert bucket.level("k") == bucket.capacity


def test_charge_gives_back_and_forgets_full_buckets() -> None:
    bucket, _ = limiter(60)
    bucket.charge("k", 0)
    assert "k" not in bucket._buckets  # nothing to charge: no bucket
    bucket.charge("k", 30)
    assert bucket.level("k") == MAX_PROOFS - 30
    bucket.charge("k", MAX_PROOFS + 30)  # into debt
    assert bucket.level("k") == -60
    bucket.charge("k", -2 * MAX_PROOFS)  # given back, never above capacity
    assert "k" not in bucket._buckets
    assert bucket.level("k") == MAX_PROOFS
    bucket.charge("j", -5)
    assert "j" not in bucket._buckets


def test_pruning_drops_refilled_buckets_then_the_oldest_half(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 4)
    bucket, clock = limiter(60)  # 60 proofs refill in 60 s
    for key in "wxyz":
        bucket.charge(key, 60)
        clock.now += 1
    clock.now = 1061.5  # w and x have refilled, y (59.5 s) and z have not
    assert bucket.allow("e")
    assert set(bucket._buckets) == {"y", "z", "e"}
    bucket.charge("e", 500)
    bucket.charge("f", 500)
    clock.now += 0.1
    assert bucket.allow("g")  # none refilled: the oldest half goes (by age, not name)
    assert set(bucket._buckets) == {"e", "f", "g"}


def test_a_bucket_refilled_to_exactly_capacity_is_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 2)
    bucket, clock = limiter(120)  # two proofs a second
    bucket.charge("b", 120)
    clock.now += 0.5
    bucket.charge("a", 2)
    clock.now += 1  # "a" exactly full again, "b" not
    assert bucket.allow("c")
    assert set(bucket._buckets) == {"b", "c"}


def limits(client: int = 60, token: int = 60) -> tuple[Limits, Clock]:
    clock = Clock()
    return Limits(RateLimiter(client, clock=clock), RateLimiter(token, clock=clock)), clock


def test_admission_lanes() -> None:
    both, _ = limits()
    peer = "192.0.2.1"
    assert both.admit(peer, "T", SMALL_REQUEST) is Admission.CLEAN  # small, full bucket
    assert both.per_client.level(peer) == MAX_PROOFS  # held, not charged
    assert both.admit(peer, "T", SMALL_REQUEST + 1) is Admission.SUSPECT  # bulk
    rest = MAX_PROOFS - 2 * SMALL_REQUEST - 1
    assert both.admit(peer, "T", rest) is Admission.SUSPECT  # exactly what is left
    assert both.admit(peer, "T", 1) is Admission.REFUSED  # all held
    assert not both.refused(peer)  # refused() looks at the bucket only
    both.settle(peer, "T", rest, 0)
    assert both.admit(peer, "T", 1) is Admission.CLEAN


def test_a_token_out_of_budget_refuses_suspects_only() -> None:
    both, _ = limits()
    peer = "192.0.2.1"
    both.per_token.charge("T", MAX_PROOFS)  # level exactly 0
    assert both.admit(peer, "T", 5) is Admission.CLEAN  # a clean client never is
    assert both.admit(peer, "T", SMALL_REQUEST + 5) is Admission.SUSPECT  # bulk, bucket full
    both.per_client.charge(peer, 1)  # below full: suspect
    assert both.admit(peer, "T", 5) is Admission.REFUSED
    assert both.admit(peer, "U", 5) is Admission.SUSPECT
    both.per_token.charge("V", MAX_PROOFS - 1)  # one proof left: not out
    assert both.admit(peer, "V", 5) is Admission.SUSPECT


def test_settle_releases_the_held_and_charges_the_worthless() -> None:
    both, _ = limits()
    peer = "192.0.2.1"
    assert both.admit(peer, "T", 100) is Admission.SUSPECT
    both.settle(peer, "T", 100, 30)
    assert both.per_client.level(peer) == MAX_PROOFS - 30
    assert both.per_token.level("T") == MAX_PROOFS - 30
    assert both.admit(peer, "T", MAX_PROOFS - 30) is Admission.SUSPECT
    assert both.admit(peer, "T", 1) is Admission.REFUSED
    both.settle(peer, "T", MAX_PROOFS - 30, 0)
    assert both.admit(peer, "T", 1) is Admission.SUSPECT
    both.settle(peer, "U", 1, 0)
    assert both.per_token.level("U") == MAX_PROOFS
    both.worthless(peer, 7)
    assert both.per_client.level(peer) == MAX_PROOFS - 37


def test_settle_keeps_what_other_requests_still_hold() -> None:
    both, _ = limits()
    peer = "192.0.2.1"
    both.admit(peer, "T", 600)
    both.admit(peer, "T", 400)
    both.settle(peer, "T", 600, 0)
    assert both.admit(peer, "T", 601) is Admission.REFUSED  # 400 still held
    assert both.admit(peer, "T", 600) is Admission.SUSPECT


def test_settle_of_a_client_that_holds_nothing() -> None:
    both, _ = limits()
    both.settle("192.0.2.9", "T", 0, 0)  # nothing held: no error, nothing kept
    assert "192.0.2.9" not in both._held
    assert both.admit("192.0.2.9", "T", MAX_PROOFS) is Admission.SUSPECT
    both.settle("192.0.2.9", "T", MAX_PROOFS, 0)
    assert "192.0.2.9" not in both._held  # released entirely: forgotten


def test_a_single_proof_still_held_counts() -> None:
    both, _ = limits()
    peer = "192.0.2.1"
    assert both.admit(peer, "T", 1) is Admission.CLEAN
    assert both.admit(peer, "T", 600) is Admission.SUSPECT
    both.settle(peer, "T", 600, 0)
    assert both.admit(peer, "T", MAX_PROOFS) is Admission.REFUSED  # 1 + 1000 > 1000
    assert both.admit(peer, "T", MAX_PROOFS - 1) is Admission.SUSPECT


def test_refused_at_exactly_one_proof_left() -> None:
    both, _ = limits()
    both.per_client.charge("192.0.2.1", MAX_PROOFS - 1)
    assert not both.refused("192.0.2.1")
    both.per_client.charge("192.0.2.1", 1)
    assert both.refused("192.0.2.1")


def test_no_client_limit_still_sends_bulk_to_the_second_lane() -> None:
    both, _ = limits(client=0)
    for _ in range(3):
        assert both.admit("192.0.2.1", "T", SMALL_REQUEST) is Admission.CLEAN
        assert both.admit("192.0.2.1", "T", SMALL_REQUEST + 1) is Admission.SUSPECT
    assert not both.refused("192.0.2.1")
    assert both.admit("192.0.2.1", "T", MAX_PROOFS) is Admission.SUSPECT
    assert both.admit("192.0.2.1", "T", MAX_PROOFS) is Admission.SUSPECT  # nothing held
    both.settle("192.0.2.1", "T", MAX_PROOFS, MAX_PROOFS)
    assert both.per_token.level("T") == 0


def test_a_client_limit_of_one_is_a_limit() -> None:
    both, _ = limits(client=1)
    peer = "192.0.2.1"
    assert both.admit(peer, "T", 10) is Admission.CLEAN
    both.settle(peer, "T", 10, 0)
    assert both.per_client.level(peer) == MAX_PROOFS
    assert both.admit(peer, "T", MAX_PROOFS) is Admission.SUSPECT  # the 10 were released
    both.settle(peer, "T", MAX_PROOFS, 0)
    both.worthless(peer, MAX_PROOFS)
    assert both.refused(peer)
    assert both.admit(peer, "T", 1) is Admission.REFUSED


def test_limits_of_sets_both_rates() -> None:
    both = Limits.of(5, 7)
    assert (both.per_client.per_minute, both.per_token.per_minute) == (5, 7)


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("not:an:address", "not:an:address"),
        ("unknown", "unknown"),
    ],
)
def test_client_keys(peer: str, key: str) -> None:
    assert client_key(peer) == key


# -- deadlines --------------------------------------------------------------------

MONDAY = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "days", "end"),
    [
        (MONDAY, 0, MONDAY),
        (MONDAY + timedelta(days=5), 0, MONDAY + timedelta(days=5)),  # Saturday + 0 stays
        (MONDAY, -3, MONDAY),
        (MONDAY, 1, MONDAY + timedelta(days=1)),
        (MONDAY, 4, MONDAY + timedelta(days=4)),  # Friday
        (MONDAY, 5, MONDAY + timedelta(days=7)),
        (MONDAY, 6, MONDAY + timedelta(days=8)),
        (MONDAY + timedelta(days=4), 1, MONDAY + timedelta(days=7)),  # Friday -> Monday
        (MONDAY + timedelta(days=2), 3, MONDAY + timedelta(days=7)),  # Wednesday + 3
        (MONDAY + timedelta(days=5), 1, MONDAY + timedelta(days=7)),  # Saturday -> Monday
        (MONDAY + timedelta(days=6), 1, MONDAY + timedelta(days=7)),  # Sunday -> Monday
        (MONDAY + timedelta(days=6), 5, MONDAY + timedelta(days=11)),  # Sunday + 5
        (MONDAY, 10, MONDAY + timedelta(days=14)),
    ],
)
def test_business_days(start: datetime, days: int, end: datetime) -> None:
    assert add_business_days(start, days) == end


def test_the_rules_are_ten_business_days_and_exactly_48_hours() -> None:
    assert deadlines.CAN_SPAM_BUSINESS_DAYS == 10
    assert deadlines.GMAIL_YAHOO_DAYS == 2
    can_spam, gmail = RULES
    assert (can_spam.key, can_spam.name, can_spam.limit) == (
        "can_spam",
        "CAN-SPAM",
        "10 business days",
    )
    assert (gmail.key, gmail.name, gmail.limit) == ("gmail_yahoo", "Gmail/Yahoo", "2 days")
    assert can_spam.deadline(MONDAY) == MONDAY + timedelta(days=14)
    assert can_spam.deadline(MONDAY + timedelta(days=4)) == MONDAY + timedelta(days=18)
    assert gmail.deadline(MONDAY) == MONDAY + timedelta(hours=48)


def test_ledger_defaults_are_the_documented_table() -> None:
    assert deadlines.LEDGER_DEFAULTS == {
        "Gmail": "48 hours",
        "Yahoo": "2 days",
        "CAN-SPAM": "10 business days",
        "CASL": "10 business days",
        "Australia Spam Act": "5 working days",
    }
    assert list(deadlines.LEDGER_DEFAULTS) == [
        "Gmail",
        "Yahoo",
        "CAN-SPAM",
        "CASL",
        "Australia Spam Act",
    ]


FRIDAY = MONDAY + timedelta(days=4)


@pytest.mark.parametrize(
    ("limit", "end"),
    [
        ("1 hour", FRIDAY + timedelta(hours=1)),
        ("48 hours", FRIDAY + timedelta(hours=48)),
        ("9999 hours", FRIDAY + timedelta(hours=9999)),  # four digits at most
        ("0 hours", FRIDAY),
        ("1 day", FRIDAY + timedelta(days=1)),
        ("2 days", FRIDAY + timedelta(days=2)),  # calendar days: Sunday
        ("1 business day", FRIDAY + timedelta(days=3)),  # Friday -> Monday
        ("10 business days", FRIDAY + timedelta(days=14)),
        ("1 working day", FRIDAY + timedelta(days=3)),
        ("5 working days", FRIDAY + timedelta(days=7)),
        ("  3 days  ", FRIDAY + timedelta(days=3)),  # surrounding blanks allowed
        ("3\t \tdays", FRIDAY + timedelta(days=3)),
    ],
)
def test_parse_limit_units(limit: str, end: datetime) -> None:
    assert deadlines.parse_limit(limit)(FRIDAY) == end


@pytest.mark.parametrize(
    "limit",
    ["", "days", "10000 hours", "-1 days", "1.5 days", "2days", "2 weeks", "ten days", "2 days x"],
)
def test_parse_limit_refuses_other_forms(limit: str) -> None:
    message = (
        f"deadline {limit!r} is not 'N hours', 'N days', 'N business days' or 'N working days'"
    )
    with pytest.raises(ValueError) as raised:
        deadlines.parse_limit(limit)
    assert str(raised.value) == message


def test_ledger_rules_keep_the_table_order_names_and_limits() -> None:
    rules = deadlines.ledger_rules({"B": " 48 hours ", "A": "1 working day"})
    assert [(r.key, r.name, r.limit) for r in rules] == [
        ("B", "B", "48 hours"),
        ("A", "A", "1 working day"),
    ]
    assert rules[0].deadline(FRIDAY) == FRIDAY + timedelta(hours=48)
    assert rules[1].deadline(FRIDAY) == FRIDAY + timedelta(days=3)
    assert deadlines.ledger_rules({}) == ()


def test_ledger_rules_of_the_defaults() -> None:
    rules = deadlines.ledger_rules(deadlines.LEDGER_DEFAULTS)
    assert [r.deadline(FRIDAY) - FRIDAY for r in rules] == [
        timedelta(hours=48),
        timedelta(days=2),
        timedelta(days=14),
        timedelta(days=14),
        timedelta(days=7),
    ]
