"""Choose among the precompressed variants beside a file, by Accept-Encoding."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from stat import S_ISREG
from typing import Final, NamedTuple

from ._devices import keeps_change_time

# The content-codings we know variants of, and the suffix of each variant's file.
SUFFIXES: Final = {"br": ".br", "zstd": ".zst", "gzip": ".gz"}
# Which to prefer when the client likes several equally.
DEFAULT_ORDER: Final = ("br", "zstd", "gzip")

# Longer values are ignored, as if absent (RFC 9110 §12.1 lets a server disregard
# preferences): real clients send a few dozen characters, and a value of a megabyte
# must neither be parsed nor cached.
MAX_ACCEPT_ENCODING: Final = 512

# RFC 9110 §12.5.3: codings [ OWS ";" OWS "q=" qvalue ], in a list.
_MEMBER: Final = re.compile(
    r"[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)"
    r"(?:[ \t]*;[ \t]*[qQ]=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?))?[ \t]*\Z"
)


class Variant(NamedTuple):
    """The file chosen to answer a request and what was learned choosing it."""

    path: str
    stat: os.stat_result | None  # the variant's lstat; None for the original file
    encoding: str | None  # the Content-Encoding of a variant; None for the original
    has_variants: bool  # whether any variant exists, so the response needs Vary


@functools.lru_cache(maxsize=256)
def parse_accept_encoding(value: str) -> Mapping[str, float]:
    """Return the weight of each coding an Accept-Encoding value names, lower-cased.

    A member that does not parse is skipped; "x-gzip" counts as "gzip" (§8.4.1.3).  An
    empty value names nothing, which leaves only identity acceptable.
    """
    weights: dict[str, float] = {}
    for member in value.split(","):
        match = _MEMBER.match(member)
        if match is None:
            continue
        coding = match[1].lower()
        if coding == "x-gzip":
            coding = "gzip"
        weights[coding] = float(match[2]) if match[2] is not None else 1.0
    return weights


def preferred_codings(
    accept_encoding: str | None, order: tuple[str, ...]
) -> tuple[str, ...]:
    """Return the codings of ``order`` that a client accepts, the best first.

    Without Accept-Encoding the client gets the original, as from upstream and most
    servers, though RFC 9110 would allow any coding.  A coding the client weighs
    below identity (named explicitly) is not used.  A value longer than
    `MAX_ACCEPT_ENCODING` is taken as absent.
    """
    if accept_encoding is None or len(accept_encoding) > MAX_ACCEPT_ENCODING:
        return ()
    return _preferred_codings(accept_encoding, order)


@functools.lru_cache(maxsize=256)
def _preferred_codings(accept_encoding: str, order: tuple[str, ...]) -> tuple[str, ...]:
    # Cached, as the parse is: a server sees the same few values again and again.
    weights = parse_accept_encoding(accept_encoding)
    anything = weights.get("*", 0.0)
    identity = weights.get("identity", 0.0)
    ranked = []
    for rank, coding in enumerate(order):
        weight = weights.get(coding, anything)
        if weight > 0 and weight >= identity:
            ranked.append((-weight, rank, coding))
    return tuple(coding for _, _, coding in sorted(ranked))


def select_variant(
    path: str,
    original: os.stat_result | None,
    accept_encoding: str | None,
    order: tuple[str, ...],
    probe: Callable[[str, os.stat_result | None], os.stat_result | None],
) -> Variant:
    """Return the variant of ``path`` to send, the best that the client accepts.

    Only regular files count: a symlinked or special variant is ignored, as upstream
    does, and so is a variant changed before the original (``original``, the
    original's stat, None when there is none): by mtime, so that a stale ``.gz``
    beside a rebuilt file never wins, even once a chmod or a copy moved its ctime;
    and by the later of mtime and ctime, as validators count change, so that it
    never wins beside a file rolled back with ``cp -p`` either.  Where there is no
    change time (Windows, FAT, exFAT), a variant must have its file's very mtime, as
    the tools that make variants give it: a file rolled back in place to an older
    mtime otherwise keeps the newer variant in use.
    Variants the client does not accept are still looked for, once one is not found,
    so that every response for a file with variants carries ``Vary``.  ``probe``
    returns the lstat of a path beside ``original``, or None for nothing there.
    """
    wanted = preferred_codings(accept_encoding, order)
    mtime_ns = 0 if original is None else original.st_mtime_ns
    changed_ns = 0 if original is None else _changed_ns(original)
    has_variants = False
    for coding in (*wanted, *(c for c in order if c not in wanted)):
        accepted = coding in wanted
        if has_variants and not accepted:
            break  # Vary is known to be needed, and nothing else is wanted
        variant = path + SUFFIXES[coding]
        try:
            st = probe(variant, original)
        except (OSError, ValueError):
            continue
        if st is None or not S_ISREG(st.st_mode):
            continue
        has_variants = True
        if accepted and _current(st, original, mtime_ns, changed_ns):
            return Variant(variant, st, coding, True)
    return Variant(path, None, None, has_variants)


def _changed_ns(st: os.stat_result) -> int:
    return max(st.st_mtime_ns, st.st_ctime_ns)


def _current(
    st: os.stat_result, original: os.stat_result | None, mtime_ns: int, changed_ns: int
) -> bool:
    """Tell whether a variant (``st``) is as new as its file (see select_variant)."""
    if original is None:
        return True
    if keeps_change_time(original.st_dev):
        return st.st_mtime_ns >= mtime_ns and _changed_ns(st) >= changed_ns
    return st.st_mtime_ns == mtime_ns


def variant_tag(tag: str | None, encoding: str | None) -> str | None:
    """Return a variant's entity-tag: the quoted ``tag`` of its file marked with its coding.

    Every representation needs a tag of its own (RFC 9110 §8.8.3.3), also where the
    tag comes from a caller's function that knows nothing of variants, or where a file
    and its variant happen to share a change time and a size.
    """
    if tag is None or encoding is None:
        return tag
    return f'{tag[:-1]}-{encoding}"'
