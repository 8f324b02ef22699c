"""Decide a conditional file request as RFC 9110 section 13 says, without I/O.

Everything here works on plain values: the request method, the raw conditional header
fields and the validators of one file.  The response class gathers those in its executor
job and acts on the `Decision`; tests can call `decide` directly.
"""

from __future__ import annotations

import calendar
import enum
import functools
import re
import time
from typing import Final, NamedTuple

from ._clock import FS_LAG_NS

__all__ = (
    "MAX_LIST_LENGTH",
    "MAX_LIST_MEMBERS",
    "MAX_PARTS",
    "MAX_RANGES",
    "MAX_RANGE_LENGTH",
    "STABLE_AFTER_NS",
    "Conditions",
    "Decision",
    "FileResponseState",
    "Validators",
    "decide",
    "evaluate_preconditions",
    "format_http_date",
    "latest_change_ns",
    "make_validators",
    "parse_http_date",
    "select_range",
    "stable_from_ns",
)

# RFC 9110 §8.8.2.2: a modification time is a strong validator only once the file has
# been left alone for a second.  Before that a second change can carry the same timestamp
# (and the same second in Last-Modified), so a client holding it could be told that a stale
# copy is current.
STABLE_AFTER_NS: Final = 1_000_000_000
_NS_PER_S: Final = 1_000_000_000


class FileResponseState(enum.Enum):
    """The outcome of a conditional file request."""

    SEND = "send"  # 200, or 206 for a satisfiable Range
    NOT_MODIFIED = "not_modified"  # 304
    PRECONDITION_FAILED = "precondition_failed"  # 412
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"  # 416
    FORBIDDEN = "forbidden"  # 403: not a regular file, or not readable
    NOT_FOUND = "not_found"  # 404


class Conditions(NamedTuple):
    """The request header fields that make a GET conditional or partial.

    Each is the field value as received, None when absent; repeated lines are joined with
    ", " as RFC 9110 §5.3 combines them.
    """

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    if_unmodified_since: str | None = None
    if_range: str | None = None
    range: str | None = None


class Validators(NamedTuple):
    """The validators of one file, as this server may use them at this moment.

    ``etag`` is the entity-tag with its quotes and ``last_modified`` the whole seconds of
    Last-Modified; each is None while it is not issued (switched off, or the file changed
    too recently to tell two versions apart).  ``changed_by_ns`` is a time by which the
    file had surely changed last, by the clock the Date header is read from (see
    `latest_change_ns`); None when dates are switched off.  ``date_is_strong`` is False
    where a date does not identify this one representation (where a variant of the
    file may carry, or have carried, the same), so that If-Range does not take it as a
    strong validator.  ``dates_exact`` is True where a file's dates may move back
    without a trace (no change time: Windows), so that a date passes the
    conditionals only when it is our Last-Modified itself.
    """

    etag: str | None
    last_modified: int | None
    changed_by_ns: int | None
    date_is_strong: bool = True
    dates_exact: bool = False


class Decision(NamedTuple):
    """What to answer: a state, and for a 206 the half-open byte ranges to send.

    No range is the whole file; one is a single-part 206; several are the parts of a
    multipart/byteranges 206, in the order to send them.
    """

    state: FileResponseState
    ranges: tuple[tuple[int, int], ...] = ()


def latest_change_ns(mtime_ns: int, ctime_ns: int) -> int:
    """Return a time by which a file with these stat times had surely changed last.

    Times are read by the clock the Date header is read from; see `_clock`.  The
    change time is the later of mtime and ctime: ctime moves whenever the content or
    the mtime is set, so a replacement that keeps an older mtime (``cp -p``, ``rsync
    -t``, ``tar x``, a rollback) still counts as a change.  The kernel stamps it with a
    clock that may lag ours by `FS_LAG_NS`, and a file system may cut the stamp down
    to its granularity: a stamp whose last digits are zeros may have been cut down to
    that power of ten (a second at most), so that much is added too.  The result is
    exclusive: the change happened before it.
    """
    changed_ns = max(mtime_ns, ctime_ns)
    granularity = 1
    while granularity < _NS_PER_S and changed_ns % (granularity * 10) == 0:
        granularity *= 10
    return changed_ns + granularity + FS_LAG_NS


def stable_from_ns(mtime_ns: int, ctime_ns: int) -> int:
    """Return when a file with these stat times is stable, by `fs_now_ns`'s clock.

    Stable means that any later change gets a later Last-Modified and a later
    entity-tag: left alone for a second after its latest possible change, measured by
    a clock that no later change can be stamped before.
    """
    return latest_change_ns(mtime_ns, ctime_ns) + STABLE_AFTER_NS


def make_validators(
    mtime_ns: int,
    ctime_ns: int,
    size: int,
    now_ns: int,
    *,
    etag: bool = True,
    last_modified: bool = True,
    date_is_strong: bool = True,
    file_id: int | None = None,
) -> Validators:
    """Return the validators of a file from its stat fields at time ``now_ns``.

    ``now_ns`` is read from `fs_now_ns`: no later change of the file can be stamped
    before it.  For a file written in place ctime equals mtime, and the entity-tag is
    the one aiohttp's FileResponse sends.  ``date_is_strong`` is False where a
    variant may share the file's dates.

    ``file_id`` is given where there is no change time (Windows, FAT, exFAT;
    ``ctime_ns`` is then the mtime): a replacement that keeps the old modification
    time and size is told apart only by being another file, so its number goes into
    the entity-tag.  A date cannot tell a file from another made in the same second,
    so there is no Last-Modified beside an entity-tag; any date must match it
    exactly (see `Validators`), so that a file moved back to an older modification
    time is not taken as unchanged since a later one; and no date is strong.
    """
    changed_ns = max(mtime_ns, ctime_ns)
    latest_ns = latest_change_ns(mtime_ns, ctime_ns)
    # A file changed in the future (clock skew) is never stable until that time passes.
    stable = now_ns >= latest_ns + STABLE_AFTER_NS
    tag = f'"{changed_ns:x}-{size:x}"'
    if file_id is not None:
        tag = f'{tag[:-1]}-{file_id:x}"'
    return Validators(
        etag=tag if etag and stable else None,
        # The first whole second not before the latest the change can have been:
        # later than the change, as a date must be to say "unchanged since" (see
        # _unmodified_since), and, a second having passed since, never later than Date.
        last_modified=-(-latest_ns // _NS_PER_S)
        if last_modified and stable and not (etag and file_id is not None)
        else None,
        changed_by_ns=latest_ns if last_modified else None,
        date_is_strong=date_is_strong and file_id is None,
        dates_exact=file_id is not None,
    )


# --- entity-tags (RFC 9110 §8.8.3) ----------------------------------------------------

# One list member: OWS [ entity-tag ] OWS, then a comma or the end (RFC 9110 §5.6.1 allows
# empty members).  etagc is %x21 / %x23-7E / obs-text.
# The whitespace after a tag belongs to the tag's group, so no two runs of [ \t]* meet:
# a long run of blanks costs linear time, not quadratic.
_TAG_LIST_MEMBER: Final = re.compile(
    r'[ \t]*(?:(W/)?("[\x21\x23-\x7e\x80-\U0010ffff]*")[ \t]*)?(?:,|\Z)'
)
_ANY: Final = "*"


# How much of an entity-tag list is read at the most: real clients send one tag or a
# few, and a megabyte of commas must not cost a loop of a million turns.
MAX_LIST_MEMBERS: Final = 64
MAX_LIST_LENGTH: Final = 4096


def _entity_tags(value: str) -> list[tuple[bool, str]]:
    """Return the (weak, opaque-tag) members of a list field.

    A member that is not an entity-tag is skipped up to the next comma: it matches
    nothing, and a well-formed member beside it still counts, as upstream reads lists.
    A match is always with the whole of a tag we issued, so this never makes a stale copy
    look current.  Past `MAX_LIST_MEMBERS` members the rest is not read, nor any of a
    value longer than `MAX_LIST_LENGTH`: a tag of ours there counts as absent, which
    makes If-None-Match true (a 200, never a 304) and If-Match false (a 412).
    """
    tags: list[tuple[bool, str]] = []
    if len(value) > MAX_LIST_LENGTH:
        return tags
    pos, end = 0, len(value)
    for _ in range(MAX_LIST_MEMBERS):
        if pos >= end:
            break
        match = _TAG_LIST_MEMBER.match(value, pos)
        if match is None:
            comma = value.find(",", pos)
            pos = end if comma < 0 else comma + 1
            continue
        if match[2] is not None:
            tags.append((match[1] is not None, match[2]))
        pos = match.end()
    return tags


# RFC 9110 §13.1.1
def _if_match(value: str, validators: Validators) -> bool:
    # The file exists (a missing one was answered 404 already), so "*" is true.
    if value.strip() == _ANY:
        return True
    if validators.etag is None:
        return False
    if value == validators.etag:
        return True  # the common case, without reading a list
    # Strong comparison (§8.8.3.2): a weak tag never matches.
    return any(not weak and tag == validators.etag for weak, tag in _entity_tags(value))


# RFC 9110 §13.1.2
def _if_none_match(value: str, validators: Validators) -> bool:
    if value.strip() == _ANY:
        return False
    if validators.etag is None:
        return True  # a file without a tag matches no tag
    if value == validators.etag:
        return False  # the common case, without reading a list
    # Weak comparison (§8.8.3.2): W/ is ignored on both sides.
    return all(tag != validators.etag for _, tag in _entity_tags(value))


# --- dates (RFC 9110 §5.6.7) ----------------------------------------------------------

_DAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_NUMBERS: Final = {name: number for number, name in enumerate(_MONTHS, 1)}
_TIME: Final = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_DAY_NAME: Final = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH: Final = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
# rfc850-date with the longest day name: Wednesday, 09-Nov-94 08:49:37 GMT
_LONGEST_DATE: Final = 33
# IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
_IMF_FIXDATE: Final = re.compile(
    rf"{_DAY_NAME}, ([0-9]{{2}}) {_MONTH} ([0-9]{{4}}) {_TIME} GMT\Z"
)
# rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT
_RFC850_DATE: Final = re.compile(
    r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
    rf"([0-9]{{2}})-{_MONTH}-([0-9]{{2}}) {_TIME} GMT\Z"
)
# asctime-date: Sun Nov  6 08:49:37 1994
_ASCTIME_DATE: Final = re.compile(
    rf"{_DAY_NAME} {_MONTH} ([0-9]{{2}}| [0-9]) {_TIME} ([0-9]{{4}})\Z"
)


def parse_http_date(value: str, *, now: float | None = None) -> int | None:
    """Return the seconds since the epoch of an HTTP-date, or None if it is not one.

    All three formats of RFC 9110 §5.6.7 are read, case-sensitively as the grammar says;
    anything else (a list of dates, a bare number, an impossible day) is not a date.
    ``now`` only places the two-digit years of rfc850-date.
    """
    value = value.strip(" \t")
    if len(value) == 29:
        # An IMF-fixdate, the format of every date we send, or nothing else is 29
        # characters long: only such values are cached, each a few bytes.
        return _fixed_date(value)
    if len(value) > _LONGEST_DATE:
        return None
    if match := _ASCTIME_DATE.match(value):
        month, day, hour, minute, second, year = match.groups()
    elif match := _RFC850_DATE.match(value):
        day, month, short_year, hour, minute, second = match.groups()
        today = time.gmtime(time.time() if now is None else now)
        year_number = today.tm_year // 100 * 100 + int(short_year)
        # A timestamp that appears more than 50 years in the future is in the most
        # recent past year with the same last two digits.
        fifty_years_ahead = (today.tm_year + 50, *today[1:6])
        clock = tuple(int(part) for part in (day, hour, minute, second))
        if (year_number, _MONTH_NUMBERS[month], *clock) > fifty_years_ahead:
            year_number -= 100
        year = str(year_number)
    else:
        return None
    return _timestamp(int(year), _MONTH_NUMBERS[month], int(day), hour, minute, second)


# Clients send back the few dates we issued, again and again: read each once.
@functools.lru_cache(maxsize=1024)
def _fixed_date(value: str) -> int | None:
    """Return the seconds of an IMF-fixdate, the format of every date we send."""
    match = _IMF_FIXDATE.match(value)
    if match is None:
        return None
    day, month, year, hour, minute, second = match.groups()
    return _timestamp(int(year), _MONTH_NUMBERS[month], int(day), hour, minute, second)


def _timestamp(
    year: int, month: int, day: int, hour: str, minute: str, second: str
) -> int | None:
    h, m, s = int(hour), int(minute), int(second)
    days = _DAYS_IN_MONTH[month - 1] + (month == 2 and calendar.isleap(year))
    # second may be 60 for a leap second (RFC 9110 §5.6.7 takes it from RFC 5322).
    if not (year >= 1 and 1 <= day <= days and h < 24 and m < 60 and s <= 60):
        return None
    return calendar.timegm((year, month, day, h, m, min(s, 59), 0, 0, 0))


@functools.lru_cache(maxsize=1024)
def format_http_date(seconds: int) -> str:
    """Return seconds since the epoch as an IMF-fixdate."""
    t = time.gmtime(seconds)
    return (
        f"{_DAY_NAMES[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} "
        f"{t.tm_year:04d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def _unmodified_since(date: int, validators: Validators) -> bool | None:
    """Tell whether the file is unchanged since ``date``; None if it has no date.

    The date is one we issued as Last-Modified, or the Date of a response (RFC 9110
    §13.1.3 lets a cache send that): either way any later change of the file happened
    after the response.  A file that had surely changed by the date is therefore the
    version the client holds, however its file system's clock lags ours or cuts its
    stamps down.  Our own Last-Modified, the first second not before that, passes.
    Where dates may move back (``dates_exact``), only our Last-Modified itself does:
    a file put back to an older date is not the one a later date was issued for.
    """
    if validators.changed_by_ns is None:
        return None
    if validators.dates_exact:
        return date == validators.last_modified
    return validators.changed_by_ns <= date * _NS_PER_S


# RFC 9110 §13.1.4
def _if_unmodified_since(value: str, validators: Validators) -> bool | None:
    date = parse_http_date(value)
    if date is None:
        return None
    return _unmodified_since(date, validators)


# RFC 9110 §13.1.3
def _if_modified_since(value: str, validators: Validators) -> bool | None:
    date = parse_http_date(value)
    if date is None:
        return None
    unmodified = _unmodified_since(date, validators)
    return None if unmodified is None else not unmodified


# RFC 9110 §13.1.5
def _if_range(value: str, validators: Validators) -> bool:
    value = value.strip(" \t")
    if value.startswith('"'):
        # An entity-tag must match strongly; ours are strong only once issued.
        return value == validators.etag
    if not validators.date_is_strong:
        return False  # §8.8.2.2: it may stand for another representation too
    date = parse_http_date(value)
    # A date must equal Last-Modified, which we issue only while it is strong (§8.8.2.2).
    return date is not None and date == validators.last_modified


# --- the evaluation order of RFC 9110 §13.2.2 -----------------------------------------

# RFC 9110 §13.2.1: methods that neither select nor modify a representation.
_UNCONDITIONAL_METHODS: Final = frozenset({"CONNECT", "OPTIONS", "TRACE"})
_SAFE_METHODS: Final = frozenset({"GET", "HEAD"})


def evaluate_preconditions(
    method: str, conditions: Conditions, validators: Validators
) -> FileResponseState:
    """Return SEND, NOT_MODIFIED or PRECONDITION_FAILED for an existing file."""
    if method in _UNCONDITIONAL_METHODS:
        return FileResponseState.SEND
    # Step 1 and 2: If-Match, else If-Unmodified-Since.
    if conditions.if_match is not None:
        unchanged = _if_match(conditions.if_match, validators)
    elif conditions.if_unmodified_since is not None:
        since = _if_unmodified_since(conditions.if_unmodified_since, validators)
        unchanged = since is not False
    else:
        unchanged = True
    if not unchanged:
        return FileResponseState.PRECONDITION_FAILED
    # Step 3 and 4: If-None-Match, else If-Modified-Since (GET and HEAD only).
    safe = method in _SAFE_METHODS
    if conditions.if_none_match is not None:
        changed = _if_none_match(conditions.if_none_match, validators)
    elif conditions.if_modified_since is not None and safe:
        changed = (
            _if_modified_since(conditions.if_modified_since, validators) is not False
        )
    else:
        changed = True
    if not changed:
        if safe:
            return FileResponseState.NOT_MODIFIED
        return FileResponseState.PRECONDITION_FAILED
    return FileResponseState.SEND


# --- ranges (RFC 9110 §14) ------------------------------------------------------------

_RANGES_SPECIFIER: Final = re.compile(
    r"([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(.*)\Z", re.DOTALL
)
_BYTE_RANGE_SPEC: Final = re.compile(r"[ \t]*([0-9]*)-([0-9]*)[ \t]*\Z")
_UNSATISFIABLE: Final = Decision(FileResponseState.RANGE_NOT_SATISFIABLE)
_SEND_ALL: Final = Decision(FileResponseState.SEND)


# RFC 9110 §14.2 and §17.15: limits against ranges that cost more than the file.
MAX_PARTS: Final = 16  # parts left after coalescing beyond which the whole file is sent
# Range-specs beyond which Range is ignored before any is read, as Apache's MaxRanges,
# and the longest Range read: their parsing would cost more than the whole file.
MAX_RANGES: Final = 200
MAX_RANGE_LENGTH: Final = 8192
# Ranges closer than this are sent as one part: a part's own headers cost about as much.
_SMALL_GAP: Final = 80
_INVALID: Final = (-1, -1)


def select_range(value: str, size: int) -> Decision:
    """Return the Decision for a Range field value on a file of ``size`` bytes."""
    if len(value) > MAX_RANGE_LENGTH:
        return _SEND_ALL  # §14.2: a server may ignore Range
    specifier = _RANGES_SPECIFIER.match(value.strip(" \t"))
    if specifier is None:
        return _UNSATISFIABLE
    unit, range_set = specifier.groups()
    # §14.2: an origin server MUST ignore a range unit it does not understand.
    if unit.lower() != "bytes" or range_set.count(",") >= MAX_RANGES:
        return _SEND_ALL
    members = [member for member in range_set.split(",") if member.strip(" \t")]
    specs = [_BYTE_RANGE_SPEC.match(member) for member in members]
    if not specs or None in specs:
        # §14.2: an invalid ranges-specifier SHOULD get a 416.
        return _UNSATISFIABLE
    ranges = [_byte_range(spec[1], spec[2], size) for spec in specs if spec is not None]
    if _INVALID in ranges:
        return _UNSATISFIABLE
    satisfiable = [r for r in ranges if r is not None]
    if not satisfiable:
        return _UNSATISFIABLE  # §14.1.1: none of the ranges overlaps the file
    if size == 0:
        return _SEND_ALL  # no 206 can describe a part of an empty file
    parts = _coalesce(satisfiable)
    if len(parts) > MAX_PARTS:
        return _SEND_ALL  # §14.2 lets a server ignore so many ranges
    return Decision(FileResponseState.SEND, parts)


def _byte_range(first: str, last: str, size: int) -> tuple[int, int] | None:
    """Return one range-spec's half-open range, None if unsatisfiable, or _INVALID."""
    # Without leading zeros ("000" is "0"), digit strings compare by length first.
    first, last = first.lstrip("0") or first[:1], last.lstrip("0") or last[:1]
    if first:
        start = _position(first)
        if last and (len(last), last) < (len(first), first):
            return _INVALID  # §14.1.1: last-pos below first-pos is invalid
        if start >= size:
            return None  # §14.1.1: starts past the end
        return start, min(_position(last) + 1, size) if last else size
    if not last:
        return _INVALID  # "bytes=-" is not a range-spec
    suffix = _position(last)
    if suffix == 0:
        return None  # §14.1.1: a zero suffix-length is unsatisfiable
    return max(size - suffix, 0), size


# Past any file's size (2**63 - 1 is the largest an off_t holds).
_BEYOND_ANY_FILE: Final = 10**19


def _position(digits: str) -> int:
    """Return a byte position without leading zeros, as _BEYOND_ANY_FILE if too long.

    int() refuses more than 4,300 digits (a 500, were it let through), and no file
    reaches 20.
    """
    return int(digits) if len(digits) < 20 else _BEYOND_ANY_FILE


def _coalesce(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Merge ranges that overlap or nearly touch, keeping the order asked for.

    RFC 9110 §14.6: parts SHOULD come in the order of the request, except those
    coalesced into others; a merged part takes the place of the first range in it.
    """
    by_start = sorted(range(len(ranges)), key=ranges.__getitem__)
    merged: list[list[int]] = []  # [start, stop, the first place it was asked for]
    for place in by_start:
        start, stop = ranges[place]
        if merged and start <= merged[-1][1] + _SMALL_GAP:
            last = merged[-1]
            last[1], last[2] = max(last[1], stop), min(last[2], place)
        else:
            merged.append([start, stop, place])
    merged.sort(key=lambda part: part[2])
    return tuple((start, stop) for start, stop, _ in merged)


def decide(
    method: str, conditions: Conditions, validators: Validators, size: int
) -> Decision:
    """Decide a request for an existing regular file of ``size`` bytes.

    Preconditions first (RFC 9110 §13.2.2), so a 304 or 412 never depends on Range; then
    Range, for GET only (§14.2), unless If-Range is present and false (§13.1.5).
    """
    state = evaluate_preconditions(method, conditions, validators)
    if (
        state is not FileResponseState.SEND
        or conditions.range is None
        or method != "GET"
    ):
        return Decision(state)
    if conditions.if_range is not None and not _if_range(
        conditions.if_range, validators
    ):
        return _SEND_ALL
    return select_range(conditions.range, size)
