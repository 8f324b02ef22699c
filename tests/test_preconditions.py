"""The pure decision, rule by rule beside RFC 9110, plus properties over any input."""

from __future__ import annotations

import calendar
import email.utils
import re

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from aiohttp_conditional import _preconditions
from aiohttp_conditional._clock import FS_LAG_NS
from aiohttp_conditional._preconditions import (
    MAX_LIST_LENGTH,
    MAX_LIST_MEMBERS,
    MAX_RANGES,
    STABLE_AFTER_NS,
    Conditions,
    Decision,
    FileResponseState,
    Validators,
    decide,
    evaluate_preconditions,
    format_http_date,
    latest_change_ns,
    make_validators,
    parse_http_date,
    select_range,
    stable_from_ns,
)

SEND = FileResponseState.SEND
NOT_MODIFIED = FileResponseState.NOT_MODIFIED
FAILED = FileResponseState.PRECONDITION_FAILED
UNSATISFIABLE = FileResponseState.RANGE_NOT_SATISFIABLE

S = 1_700_000_000  # a whole second: Tue, 14 Nov 2023 22:13:20 GMT
NS = 1_000_000_000
# The file changed a quarter into second S, stamped to the nanosecond.
CHANGED_NS = S * NS + 250_000_007
NOW_NS = CHANGED_NS + 5 * NS
V = make_validators(CHANGED_NS, CHANGED_NS, 100, NOW_NS)
TAG = V.etag
assert TAG is not None
LM = format_http_date(S + 1)  # the Last-Modified we issue: the second after the change
# The second the file changed in: the Date of a response sent before the change, which
# a cache may send as If-Modified-Since (RFC 9110 §13.1.3).
BEFORE = format_http_date(S)
AFTER = format_http_date(S + 2)


# --- validators -----------------------------------------------------------------------


def test_validators_of_a_stable_file_match_upstream_etag_format() -> None:
    latest = CHANGED_NS + 1 + FS_LAG_NS  # an ns stamp, late by FS_LAG_NS at the most
    assert Validators(f'"{CHANGED_NS:x}-{100:x}"', S + 1, latest) == V


@pytest.mark.parametrize(
    ("stamp_ns", "granularity_ns"),
    [
        (CHANGED_NS, 1),
        (S * NS + 10, 10),
        (S * NS + 250_000_000, 10_000_000),  # as if cut down to 10 ms (exFAT)
        (S * NS, NS),  # whole seconds: ext3, ext4 with small inodes, HFS+
        (0, NS),
    ],
)
def test_the_latest_change_allows_for_lag_and_granularity(
    stamp_ns: int, granularity_ns: int
) -> None:
    expected = stamp_ns + granularity_ns + FS_LAG_NS
    assert latest_change_ns(stamp_ns, 0) == expected
    assert latest_change_ns(0, stamp_ns) == expected


@given(
    st.integers(min_value=0, max_value=2**62),
    st.integers(min_value=0, max_value=10**12),
)
@example(S * NS, 0)
@example(CHANGED_NS, 0)
@example(S * NS - FS_LAG_NS - 1, 0)
def test_last_modified_is_after_the_change_and_never_later_than_date(
    changed_ns: int, more_ns: int
) -> None:
    now = stable_from_ns(changed_ns, changed_ns) + more_ns
    v = make_validators(changed_ns, changed_ns, 1, now)
    assert v.last_modified is not None
    # After the change, even if it was stamped late by a lagging clock ...
    assert changed_ns + FS_LAG_NS < v.last_modified * NS
    # ... and not after Date, which the fine clock, never behind ours, gives.
    assert v.last_modified <= now // NS
    assert evaluate_preconditions(
        "GET", C(if_modified_since=last_modified_of(v)), v
    ) is (NOT_MODIFIED)


def last_modified_of(v: Validators) -> str:
    assert v.last_modified is not None
    return format_http_date(v.last_modified)


@pytest.mark.parametrize(
    "age_ns",
    [0, 1, STABLE_AFTER_NS - 1, STABLE_AFTER_NS + FS_LAG_NS, -5 * NS],
    ids=["now", "1ns", "almost", "a-second-by-a-lagging-clock", "future"],
)
def test_a_file_changed_within_a_second_gets_no_validators(age_ns: int) -> None:
    v = make_validators(CHANGED_NS, CHANGED_NS, 100, CHANGED_NS + age_ns)
    assert v == Validators(None, None, latest_change_ns(CHANGED_NS, CHANGED_NS))


def test_a_file_is_stable_one_second_after_its_latest_possible_change() -> None:
    stable = stable_from_ns(CHANGED_NS, CHANGED_NS)
    assert stable == CHANGED_NS + 1 + FS_LAG_NS + STABLE_AFTER_NS
    assert make_validators(CHANGED_NS, CHANGED_NS, 100, stable - 1).etag is None
    v = make_validators(CHANGED_NS, CHANGED_NS, 100, stable)
    assert v.etag is not None
    assert v.last_modified == S + 1


def test_ctime_later_than_mtime_drives_the_validators() -> None:
    # cp -p, rsync -t, tar x: old mtime, new ctime.
    old_mtime = (S - 86400) * NS
    v = make_validators(old_mtime, CHANGED_NS, 100, NOW_NS)
    assert v == V


@pytest.mark.parametrize(
    ("etag", "last_modified", "expected"),
    [
        (False, True, Validators(None, S + 1, V.changed_by_ns)),
        (True, False, Validators(TAG, None, None)),
        (False, False, Validators(None, None, None)),
    ],
    ids=["no-etag", "no-last-modified", "neither"],
)
def test_switched_off_validators(
    etag: bool, last_modified: bool, expected: Validators
) -> None:
    v = make_validators(
        CHANGED_NS, CHANGED_NS, 100, NOW_NS, etag=etag, last_modified=last_modified
    )
    assert v == expected


# --- HTTP-date (RFC 9110 §5.6.7) ------------------------------------------------------

NOV_6_1994 = 784111777


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "  Sun, 06 Nov 1994 08:49:37 GMT\t",
    ],
    ids=["imf-fixdate", "rfc850", "asctime", "surrounding-whitespace"],
)
def test_all_three_date_formats_are_read(value: str) -> None:
    assert parse_http_date(value, now=S) == NOV_6_1994


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0",
        "1700000000",
        "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 0000 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT garbage",
        "Sun,  06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov 06 08:49:37 1994 GMT",
        "Sun Nov 6 08:49:37 1994",
        "1994-11-06T08:49:37Z",
        "Sun, 06 Nov 1994 08:49:37 GMT\n",
        "Sun, 06 Nov 1994 08:49:3\u0667 GMT",
    ],
)
def test_anything_else_is_not_a_date(value: str) -> None:
    assert parse_http_date(value, now=S) is None


def test_leap_day_and_leap_second_are_dates() -> None:
    assert parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT") == 1709164800
    assert parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT") == 1483228799


@pytest.mark.parametrize(
    ("short_year", "year"),
    [("94", 1994), ("23", 2023), ("30", 2030), ("73", 2073), ("74", 1974)],
)
def test_rfc850_two_digit_years_more_than_50_years_ahead_are_in_the_past(
    short_year: str, year: int
) -> None:
    # RFC 9110 §5.6.7, read in 2023.
    value = f"Monday, 01-Jan-{short_year} 00:00:00 GMT"
    assert parse_http_date(value, now=S) == calendar.timegm((year, 1, 1, 0, 0, 0))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tuesday, 14-Nov-73 22:13:20 GMT", (2073, 11, 14, 22, 13, 20)),
        ("Tuesday, 14-Nov-73 22:13:21 GMT", (1973, 11, 14, 22, 13, 21)),
        ("Monday, 31-Dec-73 23:59:59 GMT", (1973, 12, 31, 23, 59, 59)),
    ],
    ids=["exactly-50-years-ahead", "a-second-more", "later-that-year"],
)
def test_rfc850_fifty_years_ahead_is_counted_to_the_second(
    value: str, expected: tuple[int, ...]
) -> None:
    # RFC 9110 §5.6.7: "a timestamp that appears to be more than 50 years in the
    # future", read on Tue, 14 Nov 2023 22:13:20 GMT.
    assert parse_http_date(value, now=S) == calendar.timegm((*expected, 0, 0, 0))


@given(st.integers(min_value=-(2**31), max_value=253402300799))
def test_format_and_parse_round_trip(seconds: int) -> None:
    assume(seconds >= -62135596800)  # year 1
    text = format_http_date(seconds)
    assert parse_http_date(text) == seconds
    if seconds >= 0:
        assert text == email.utils.formatdate(seconds, usegmt=True)


# --- evaluation order and each condition (RFC 9110 §13.1, §13.2.2) --------------------

C = Conditions


@pytest.mark.parametrize(
    ("method", "conditions", "expected"),
    [
        # §13.1.1 If-Match: strong comparison, "*", lists.
        ("GET", C(if_match=TAG), SEND),
        ("GET", C(if_match=f'"x", {TAG}'), SEND),
        ("GET", C(if_match='"x"'), FAILED),
        ("GET", C(if_match=f"W/{TAG}"), FAILED),
        ("GET", C(if_match="*"), SEND),
        ("GET", C(if_match=" * "), SEND),
        ("GET", C(if_match=f"{TAG}, *"), SEND),
        ("GET", C(if_match=f'junk, "x", {TAG}'), SEND),
        ("GET", C(if_match='"x", junk'), FAILED),
        ("GET", C(if_match=TAG.strip('"')), FAILED),
        ("GET", C(if_match=""), FAILED),
        ("PUT", C(if_match='"x"'), FAILED),
        # §13.1.4 If-Unmodified-Since, only without If-Match.
        ("GET", C(if_unmodified_since=LM), SEND),
        ("GET", C(if_unmodified_since=AFTER), SEND),
        ("GET", C(if_unmodified_since=BEFORE), FAILED),
        ("GET", C(if_unmodified_since="yesterday"), SEND),
        ("GET", C(if_unmodified_since=f"{BEFORE}, {BEFORE}"), SEND),
        ("GET", C(if_match=TAG, if_unmodified_since=BEFORE), SEND),
        ("GET", C(if_match="*", if_unmodified_since=BEFORE), SEND),
        # §13.1.2 If-None-Match: weak comparison, "*", lists; 412 for other methods.
        ("GET", C(if_none_match=TAG), NOT_MODIFIED),
        ("HEAD", C(if_none_match=TAG), NOT_MODIFIED),
        ("GET", C(if_none_match=f"W/{TAG}"), NOT_MODIFIED),
        ("GET", C(if_none_match=f'"a",W/"b" ,, {TAG}'), NOT_MODIFIED),
        ("GET", C(if_none_match='"a", W/"b"'), SEND),
        ("GET", C(if_none_match="*"), NOT_MODIFIED),
        ("POST", C(if_none_match=TAG), FAILED),
        ("PUT", C(if_none_match="*"), FAILED),
        ("DELETE", C(if_none_match=f"W/{TAG}"), FAILED),
        # A member that is not an entity-tag matches nothing; the others still count.
        ("GET", C(if_none_match=f"garbage, {TAG}"), NOT_MODIFIED),
        ("GET", C(if_none_match=f'"unterminated, {TAG}'), NOT_MODIFIED),
        ("GET", C(if_none_match="garbage"), SEND),
        ("GET", C(if_none_match=f"{TAG[:-1]}"), SEND),
        # §13.1.3 If-Modified-Since: GET and HEAD only, and only without If-None-Match.
        ("GET", C(if_modified_since=LM), NOT_MODIFIED),
        ("HEAD", C(if_modified_since=AFTER), NOT_MODIFIED),
        # A Date sent before the change, in the same second: never a 304.
        ("GET", C(if_modified_since=BEFORE), SEND),
        ("POST", C(if_modified_since=LM), SEND),
        ("GET", C(if_modified_since="not a date"), SEND),
        ("GET", C(if_modified_since=f"{LM}, {LM}"), SEND),
        ("GET", C(if_none_match='"other"', if_modified_since=LM), SEND),
        # Order: 412 before 304.
        ("GET", C(if_match='"x"', if_none_match=TAG), FAILED),
        ("GET", C(if_unmodified_since=BEFORE, if_modified_since=LM), FAILED),
        ("GET", C(if_match=TAG, if_none_match=TAG), NOT_MODIFIED),
        # §13.2.1: no preconditions for methods that select no representation.
        ("OPTIONS", C(if_match='"x"', if_none_match=TAG), SEND),
        ("TRACE", C(if_none_match="*"), SEND),
    ],
)
def test_evaluate_preconditions(
    method: str, conditions: Conditions, expected: FileResponseState
) -> None:
    assert evaluate_preconditions(method, conditions, V) is expected


UNSTABLE = make_validators(CHANGED_NS, CHANGED_NS, 100, CHANGED_NS + NS // 2)


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        (C(if_none_match=TAG), SEND),
        (C(if_none_match="*"), NOT_MODIFIED),
        (C(if_match=TAG), FAILED),
        (C(if_match="*"), SEND),
        # Dates are compared with the exact change time, issued or not.
        (C(if_modified_since=BEFORE), SEND),
        (C(if_modified_since=LM), NOT_MODIFIED),
        (C(if_unmodified_since=BEFORE), FAILED),
        (C(if_unmodified_since=LM), SEND),
    ],
)
def test_recently_changed_file_honours_no_validator_but_exact_dates(
    conditions: Conditions, expected: FileResponseState
) -> None:
    assert evaluate_preconditions("GET", conditions, UNSTABLE) is expected


NO_VALIDATORS = make_validators(
    CHANGED_NS, CHANGED_NS, 100, NOW_NS, etag=False, last_modified=False
)


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        (C(if_none_match=TAG), SEND),
        (C(if_match=TAG), FAILED),
        (C(if_match="*"), SEND),
        # RFC 9110 §13.1.3, §13.1.4: ignored when the resource has no modification date.
        (C(if_modified_since=AFTER), SEND),
        (C(if_unmodified_since=BEFORE), SEND),
    ],
)
def test_switched_off_validators_are_not_honoured(
    conditions: Conditions, expected: FileResponseState
) -> None:
    assert evaluate_preconditions("GET", conditions, NO_VALIDATORS) is expected


# --- Range and If-Range (RFC 9110 §14, §13.1.5) ---------------------------------------


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 10)),
        ("bytes=10-", 100, (10, 100)),
        ("bytes=-10", 100, (90, 100)),
        ("bytes=-1000", 100, (0, 100)),
        ("bytes=50-1000", 100, (50, 100)),
        ("bytes=99-99", 100, (99, 100)),
        ("Bytes=0-0", 100, (0, 1)),
        ("bytes=0-0,", 100, (0, 1)),
        ("bytes= 0-0 ", 100, (0, 1)),
        ("bytes=100-", 100, UNSATISFIABLE),
        ("bytes=100-200", 100, UNSATISFIABLE),
        ("bytes=-0", 100, UNSATISFIABLE),
        ("bytes=-0", 0, UNSATISFIABLE),
        ("bytes=0-", 0, UNSATISFIABLE),
        ("bytes=-5", 0, SEND),
        ("bytes=5-1", 100, UNSATISFIABLE),
        ("bytes=-", 100, UNSATISFIABLE),
        ("bytes=", 100, UNSATISFIABLE),
        ("bytes=a-b", 100, UNSATISFIABLE),
        ("bytes=0--1", 100, UNSATISFIABLE),
        ("bytes=\u0661-2", 100, UNSATISFIABLE),
        ("bytes=1_0-20", 100, UNSATISFIABLE),
        ("bytes 0-1", 100, UNSATISFIABLE),
        # Positions past any file, longer than int() reads (4,300 digits), leading zeros.
        ("bytes=0-" + "9" * 5000, 100, (0, 100)),
        ("bytes=" + "9" * 5000 + "-", 100, UNSATISFIABLE),
        ("bytes=-" + "9" * 5000, 100, (0, 100)),
        ("bytes=" + "0" * 5000 + "5-0007", 100, (5, 8)),
        ("bytes=" + "0" * 30 + "-" + "0" * 30, 100, (0, 1)),
        ("bytes=0-1,1" + "0" * 30 + "-1" + "0" * 29, 100, UNSATISFIABLE),
        ("bytes=0-1,1" + "0" * 29 + "-1" + "0" * 30, 100, (0, 2)),
        # Several ranges: ascending ones kept apart, near or overlapping ones merged.
        ("bytes=0-1,500-600", 1000, ((0, 2), (500, 601))),
        # §14.6: parts in the order asked for; a merged one where its first range was.
        ("bytes=500-600,0-1", 1000, ((500, 601), (0, 2))),
        ("bytes=900-,0-1,10-20", 1000, ((900, 1000), (0, 21))),
        ("bytes=500-600,0-1,550-", 1000, ((500, 1000), (0, 2))),
        ("bytes=0-1,10-20", 1000, (0, 21)),
        ("bytes=0-99,50-150,-10", 1000, ((0, 151), (990, 1000))),
        ("bytes=0-1,2000-3000", 1000, (0, 2)),
        ("bytes=2000-,-0", 1000, UNSATISFIABLE),
        ("bytes=0-1,5-2", 1000, UNSATISFIABLE),
        (
            ",".join(f"{i * 100}-{i * 100}" for i in range(17)).join(("bytes=", "")),
            10**4,
            SEND,
        ),
        (
            ",".join(f"{i * 100}-{i * 100}" for i in range(16)).join(("bytes=", "")),
            10**4,
            tuple((i * 100, i * 100 + 1) for i in range(16)),
        ),
        ("bytes=0-1,x", 100, UNSATISFIABLE),
        ("items=0-1", 100, SEND),
        ("none=", 100, SEND),
    ],
)
def test_select_range(
    value: str,
    size: int,
    expected: tuple[int, int] | tuple[tuple[int, int], ...] | FileResponseState,
) -> None:
    if isinstance(expected, tuple) and isinstance(expected[0], tuple):
        assert select_range(value, size) == Decision(SEND, expected)
    elif isinstance(expected, tuple):
        assert select_range(value, size) == Decision(SEND, (expected,))
    else:
        assert select_range(value, size) == Decision(expected)


PARTIAL = Decision(SEND, ((0, 10),))
WHOLE = Decision(SEND)


@pytest.mark.parametrize(
    ("method", "conditions", "validators", "expected"),
    [
        ("GET", C(range="bytes=0-9"), V, PARTIAL),
        ("HEAD", C(range="bytes=0-9"), V, WHOLE),
        ("POST", C(range="bytes=0-9"), V, WHOLE),
        ("GET", C(if_range=TAG), V, WHOLE),
        ("GET", C(range="bytes=0-9", if_range=TAG), V, PARTIAL),
        ("GET", C(range="bytes=0-9", if_range=f"W/{TAG}"), V, WHOLE),
        ("GET", C(range="bytes=0-9", if_range='"other"'), V, WHOLE),
        ("GET", C(range="bytes=0-9", if_range=f"{TAG}, {TAG}"), V, WHOLE),
        ("GET", C(range="bytes=0-9", if_range=LM), V, PARTIAL),
        ("GET", C(range="bytes=0-9", if_range=AFTER), V, WHOLE),
        ("GET", C(range="bytes=0-9", if_range=BEFORE), V, WHOLE),
        ("GET", C(range="bytes=0-9", if_range="garbage"), V, WHOLE),
        ("GET", C(range="bytes=0-9", if_range=TAG), UNSTABLE, WHOLE),
        ("GET", C(range="bytes=0-9", if_range=LM), UNSTABLE, WHOLE),
        ("GET", C(range="bytes=0-9", if_range=LM), NO_VALIDATORS, WHOLE),
        ("GET", C(range="bytes=500-", if_range=TAG), V, Decision(UNSATISFIABLE)),
        ("GET", C(range="bytes=500-", if_range='"other"'), V, WHOLE),
        # Preconditions come first: a 304 or 412 never depends on Range.
        ("GET", C(range="bytes=500-", if_none_match=TAG), V, Decision(NOT_MODIFIED)),
        ("GET", C(range="bytes=0-9", if_match='"x"'), V, Decision(FAILED)),
    ],
)
def test_decide_range_and_if_range(
    method: str, conditions: Conditions, validators: Validators, expected: Decision
) -> None:
    assert decide(method, conditions, validators, 100) == expected


# --- properties -----------------------------------------------------------------------

header_values = st.one_of(
    st.none(),
    st.text(max_size=60),
    st.sampled_from(["*", TAG, f"W/{TAG}", LM, BEFORE, AFTER, "bytes=0-9", "bytes=-0"]),
)
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
validators = st.builds(
    make_validators,
    st.integers(0, 2**62),
    st.integers(0, 2**62),
    st.integers(0, 2**40),
    st.integers(0, 2**62),
    etag=st.booleans(),
    last_modified=st.booleans(),
)


@given(methods, st.builds(Conditions, *[header_values] * 6), validators)
def test_any_input_gets_an_answer_the_rfc_allows(
    method: str, conditions: Conditions, v: Validators
) -> None:
    size = 100
    decision = decide(method, conditions, v, size)
    if decision.state is NOT_MODIFIED:
        assert method in ("GET", "HEAD")
    for start, stop in decision.ranges:
        assert method == "GET"
        assert conditions.range is not None
        assert 0 <= start < stop <= size
    if decision.state is UNSATISFIABLE:
        assert method == "GET"
        assert conditions.range is not None


@given(
    # The kernel stamps a change with a clock that stands still between ticks, lagging
    # the fine clock (Date's) by up to one tick, or, right after a stat (Linux 6.13
    # and later), with the fine clock itself; the file system then cuts the stamp down
    # to its granularity (ns: ext4, XFS, tmpfs; 10 ms: exFAT; 1 s: ext3, HFS+).
    tick=st.sampled_from([1, 1_000_000, 4_000_000, 10_000_000, FS_LAG_NS]),
    phase=st.integers(0, FS_LAG_NS),
    granularity=st.sampled_from([1, 1_000, 10_000_000, NS]),
    fine_stamps=st.sets(st.sampled_from(["old", "new"])),
    # How the server reads the time: Linux's coarse clock itself, or elsewhere the
    # fine clock less the most a stamp may lag it.
    server_clock=st.sampled_from(["coarse", "lagging"]),
    # The version the client got from us: it changed at old_at and was sent at sent_at.
    old_at=st.integers(0, 4 * NS),
    sent_after=st.integers(0, 3 * NS),
    old_size=st.integers(1, 3),
    # Later the file is replaced; mtime may be anything (kept, older, the same second),
    # ctime is the moment of the replacement.
    replaced_after=st.integers(1, 3 * NS),
    new_mtime=st.integers(0, 2**61),
    new_size=st.integers(1, 3),
    checked_after=st.integers(0, 3 * NS),
    # What the client holds: our ETag, our Last-Modified, or our Date, which a cache may
    # send as If-Modified-Since when there was no Last-Modified (RFC 9110 §13.1.3).
    held=st.sampled_from(["ETag", "Last-Modified", "Date"]),
    method=st.sampled_from(["GET", "HEAD"]),
)
# On a file system with whole-second times, a change late in the second that the first
# version's time was recorded in: only the full second of waiting keeps the two apart.
@example(
    tick=1,
    phase=0,
    granularity=NS,
    fine_stamps=set(),
    server_clock="coarse",
    old_at=0,
    sent_after=95 * NS // 100,
    old_size=1,
    replaced_after=1,
    new_mtime=0,
    new_size=1,
    checked_after=0,
    held="Last-Modified",
    method="GET",
)
@example(
    tick=1,
    phase=0,
    granularity=NS,
    fine_stamps=set(),
    server_clock="coarse",
    old_at=0,
    sent_after=95 * NS // 100,
    old_size=1,
    replaced_after=1,
    new_mtime=0,
    new_size=1,
    checked_after=0,
    held="ETag",
    method="GET",
)
# Sent with no validators, changed again in the second of that response's Date.
@example(
    tick=1,
    phase=0,
    granularity=1,
    fine_stamps=set(),
    server_clock="coarse",
    old_at=9 * NS // 10,
    sent_after=NS // 2,
    old_size=1,
    replaced_after=NS // 5,
    new_mtime=0,
    new_size=1,
    checked_after=2 * NS,
    held="Date",
    method="GET",
)
# Linux's coarse clock: the first version stamped by the fine clock (as right after a
# stat), its validators issued as the second turns, the file rewritten in place before
# the next tick, and so stamped before the Last-Modified sent.
@example(
    tick=4_000_000,
    phase=3_000_000,
    granularity=1,
    fine_stamps={"old"},
    server_clock="lagging",
    old_at=500_000,
    sent_after=NS + FS_LAG_NS + 100_000,
    old_size=1,
    replaced_after=1_000,
    new_mtime=0,
    new_size=1,
    checked_after=0,
    held="Last-Modified",
    method="GET",
)
# Sent with no validators as a second begins, rewritten within the tick: stamped in
# the second before the Date held.
@example(
    tick=4_000_000,
    phase=3_000_000,
    granularity=1,
    fine_stamps=set(),
    server_clock="coarse",
    old_at=NS // 2,
    sent_after=NS // 2 + 1,
    old_size=1,
    replaced_after=1,
    new_mtime=0,
    new_size=1,
    checked_after=2 * NS,
    held="Date",
    method="GET",
)
# Whole-second times: sent with no validators just after a second began, rewritten
# within the tick, the rewrite stamped (and cut down) to the second before the Date.
@example(
    4_000_000,
    3_000_000,
    NS,
    set(),
    "coarse",
    NS // 2,
    NS // 2 + 1_000_000,
    1,
    1,
    0,
    1,
    0,
    "Date",
    "GET",
)
def test_no_validator_we_sent_passes_for_a_changed_file(
    tick: int,
    phase: int,
    granularity: int,
    fine_stamps: set[str],
    server_clock: str,
    old_at: int,
    sent_after: int,
    old_size: int,
    replaced_after: int,
    new_mtime: int,
    new_size: int,
    checked_after: int,
    held: str,
    method: str,
) -> None:
    def coarse(t: int) -> int:
        return t - (t - phase) % tick

    def stamp(t: int, version: str) -> int:
        at = t if version in fine_stamps else coarse(t)
        return at - at % granularity

    def server_now(t: int) -> int:
        return coarse(t) if server_clock == "coarse" else t - FS_LAG_NS

    sent_at = old_at + sent_after
    old_stamp = stamp(old_at, "old")
    old = make_validators(old_stamp, old_stamp, old_size, server_now(sent_at))
    replaced_at = sent_at + replaced_after
    now = replaced_at + checked_after
    new_ctime = stamp(replaced_at, "new")
    new_mtime -= new_mtime % granularity
    new = make_validators(new_mtime, new_ctime, new_size, server_now(now))
    if held == "ETag":
        if old.etag is None:
            return  # sent without one: the client has nothing to revalidate with
        value = old.etag
        not_modified, unchanged = C(if_none_match=value), C(if_match=value)
    else:
        if held == "Last-Modified":
            if old.last_modified is None:
                return
            # RFC 9110 §8.8.2.1: never later than the Date of the same response.
            assert old.last_modified <= sent_at // NS
            value = format_http_date(old.last_modified)
        else:
            value = format_http_date(sent_at // NS)
        not_modified = C(if_modified_since=value)
        unchanged = C(if_unmodified_since=value)
    # Never a 304, never a precondition passed, never a 206 of the new version.
    assert evaluate_preconditions(method, not_modified, new) is not NOT_MODIFIED
    assert evaluate_preconditions("PUT", unchanged, new) is FAILED
    partial = decide("GET", C(if_range=value, range="bytes=0-0"), new, new_size)
    assert partial == Decision(SEND)


# --- what one hostile header can cost -------------------------------------------------


class CountingPattern:
    """A compiled pattern of the module under test that counts its matches."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.calls = 0

    def match(self, value: str, pos: int = 0) -> re.Match[str] | None:
        self.calls += 1
        return self.pattern.match(value, pos)


MEGABYTE = 1 << 20


@pytest.mark.parametrize(
    "value",
    [",", ", ", '"x", ', 'W/"x",', '"x,', " "],
    ids=["commas", "blank-members", "tags", "weak-tags", "open-quotes", "blanks"],
)
def test_a_megabyte_list_costs_a_bounded_number_of_matches(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    counting = CountingPattern(_preconditions._TAG_LIST_MEMBER)
    monkeypatch.setattr(_preconditions, "_TAG_LIST_MEMBER", counting)
    hostile = value * (MEGABYTE // len(value))
    assert evaluate_preconditions("GET", C(if_none_match=hostile), V) is SEND
    assert evaluate_preconditions("GET", C(if_match=hostile), V) is FAILED
    assert counting.calls <= 2 * MAX_LIST_MEMBERS


def test_a_tag_past_the_members_read_is_not_seen() -> None:
    # Never a 304 for what was not read; a 412 for If-Match, as for any stranger.
    assert TAG is not None
    near = ", ".join([*['"other"'] * (MAX_LIST_MEMBERS - 1), TAG])
    far = ", ".join([*['"other"'] * MAX_LIST_MEMBERS, TAG])
    assert evaluate_preconditions("GET", C(if_none_match=near), V) is NOT_MODIFIED
    assert evaluate_preconditions("GET", C(if_match=near), V) is SEND
    assert evaluate_preconditions("GET", C(if_none_match=far), V) is SEND
    assert evaluate_preconditions("GET", C(if_match=far), V) is FAILED
    assert len(near) < MAX_LIST_LENGTH
    assert evaluate_preconditions("GET", C(if_none_match=near + " " * 5000), V) is SEND


def test_a_megabyte_of_ranges_is_ignored_unread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counting = CountingPattern(_preconditions._BYTE_RANGE_SPEC)
    monkeypatch.setattr(_preconditions, "_BYTE_RANGE_SPEC", counting)
    hostile = "bytes=" + "0-0," * (MEGABYTE // 4)
    assert select_range(hostile, 100) == Decision(SEND)
    assert counting.calls == 0
    # As many as Apache's MaxRanges are still read.
    far_apart = range(0, 100 * (MAX_RANGES - 1), 100)
    many = "bytes=" + ",".join(f"{n}-{n}" for n in far_apart)
    assert select_range(many, 100 * MAX_RANGES) == Decision(SEND)  # over MAX_PARTS
    assert counting.calls == MAX_RANGES - 1
    same = "bytes=" + "0-0," * (MAX_RANGES - 1) + "0-0"
    assert select_range(same, 10).ranges == ((0, 1),)
    # One long member, or a few: read no more than a real Range can be long.
    calls = counting.calls
    for member in ("1" * 8192 + "-" + "1" * 8192 + " " * 8192 + "x", " " * 9000):
        assert select_range(f"bytes=0-0,{member}", 100) == Decision(SEND)
    assert counting.calls == calls


@pytest.mark.parametrize(
    "value",
    [
        "x" * MEGABYTE,
        "Sun, 06 Nov 1994 08:49:37 GMT" + " junk" * (MEGABYTE // 5),
        "Sun, 06 Nov 1994 08:49:37 GMT" + "0" * 5,
    ],
    ids=["junk", "date-then-junk", "a-little-long"],
)
def test_a_long_date_is_neither_a_date_nor_cached(value: str) -> None:
    before = _preconditions._fixed_date.cache_info()
    assert parse_http_date(value) is None
    for field in ("if_modified_since", "if_unmodified_since", "if_range"):
        evaluate_preconditions("GET", C(**{field: value}), V)
    assert _preconditions._fixed_date.cache_info().currsize == before.currsize
