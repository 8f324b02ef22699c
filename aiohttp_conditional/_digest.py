"""RFC 9530 digests: the Repr-Digest of a representation, and what a client wants."""

from __future__ import annotations

import base64
import re
from typing import Final

__all__ = ("ALGORITHM", "refuses_sha256", "repr_digest")

ALGORITHM: Final = "sha-256"
# RFC 8941 §3.2: a Dictionary member is a key, then "=" and an Item (here, as RFC
# 9530 §4 says, an Integer), with Parameters after it that mean nothing here.
_MEMBER: Final = re.compile(
    r"([a-z*][a-z0-9_\-.*]{0,63})=(-?[0-9]{1,15})((?:;[a-z*][a-z0-9_\-.*]*(?:=[^;,]*)?)*)"
)


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
    is not a Dictionary of Integers is ignored, as RFC 8941 §4.2 says; where a key
    repeats, its last value counts.
    """
    if not want_repr_digest:
        return False
    preference = None
    for member in want_repr_digest[:4096].split(","):
        match = _MEMBER.fullmatch(member.strip(" \t"))
        if match is None:
            return False  # not a Dictionary of Integers: the whole field is ignored
        if match[1] == ALGORITHM:
            preference = int(match[2])
    return preference == 0
