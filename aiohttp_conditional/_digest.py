"""RFC 9530 digests: the Repr-Digest of a representation, and what a client wants."""

from __future__ import annotations

import base64
import re
from typing import Final

__all__ = ("ALGORITHM", "refuses_sha256", "repr_digest")

ALGORITHM: Final = "sha-256"
# RFC 8941 (and 9651) Structured Fields, as much as a Dictionary's syntax needs: a
# field that is not one is ignored whole (§4.2), so a refusal is read only from a
# field that parses.
_KEY: Final = r"[a-z*][a-z0-9_\-.*]*"
_BARE: Final = (
    r"-?[0-9]{1,15}(?:\.[0-9]{1,3})?"  # integer, decimal
    r'|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"'  # string
    r"|[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*"  # token
    r"|:[A-Za-z0-9+/=]*:"  # byte sequence
    r"|\?[01]"  # boolean
    r"|@-?[0-9]{1,15}"  # date
    r'|%"(?:[\x20\x21\x23\x24\x26-\x5b\x5d-\x7e]|%[0-9a-f]{2})*"'  # display string
)
_PARAMETERS: Final = rf"(?:;\x20*{_KEY}(?:=(?:{_BARE}))?)*"
_ITEM: Final = rf"(?:{_BARE}){_PARAMETERS}"
_INNER_LIST: Final = rf"\(\x20*(?:{_ITEM}(?:\x20+{_ITEM})*\x20*)?\){_PARAMETERS}"
_MEMBER: Final = re.compile(
    rf"({_KEY})(?:=(?:(-?[0-9]{{1,15}})(?![.0-9]){_PARAMETERS}|{_ITEM}|{_INNER_LIST})"
    rf"|{_PARAMETERS})"
)
_SEPARATOR: Final = re.compile(r"[ \t]*,[ \t]*")
_LONGEST: Final = 4096  # characters of the field read; a longer one is ignored


def repr_digest(content_hash: str) -> str:
    """Return the Repr-Digest value of a file whose `content_hash` is given.

    The hash is URL-safe base64 (as entity-tags carry it); RFC 8941 byte sequences
    are in the standard alphabet.
    """
    digest = base64.urlsafe_b64decode(content_hash)
    return f"{ALGORITHM}=:{base64.b64encode(digest).decode('ascii')}:"


def refuses_sha256(want_repr_digest: str | None) -> bool:
    """Tell whether a request's Want-Repr-Digest calls SHA-256 not acceptable.

    RFC 9530 §4: a preference of 0 means "not acceptable"; any other field is a hint
    that a server may follow or not, and a digest may be sent unasked.  A field that
    is not a Dictionary is ignored, as RFC 8941 §4.2 says; where a key repeats, its
    last value counts; a value that is not an Integer is no preference.
    """
    if not want_repr_digest:
        return False
    field = want_repr_digest.strip(" \t")
    if len(field) > _LONGEST:
        return False
    preference = None
    position = 0
    while True:
        member = _MEMBER.match(field, position)
        if member is None:
            return False  # not a Dictionary: the whole field is ignored
        if member[1] == ALGORITHM:
            preference = None if member[2] is None else int(member[2])
        position = member.end()
        if position == len(field):
            return preference == 0
        separator = _SEPARATOR.match(field, position)
        if separator is None or separator.end() == len(field):
            return False  # members run together, or a trailing comma
        position = separator.end()
