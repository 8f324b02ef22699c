"""A page with a script added: another representation of an HTML file.

The live route (see `_live`) sends each HTML page with a ``<script>`` element added
before ``</body>``.  What it sends is not the file's bytes: it has a length of its
own and an entity-tag of its own, marked with a hash of what was added, so that a
page is revalidated to a 304 only while both the file and the addition are unchanged
(RFC 9110 §8.8.3: each representation its own tag).
"""

from __future__ import annotations

import hashlib
from typing import Final, NamedTuple

__all__ = ("MAX_PAGE", "Injection", "inject", "injected_tag")

# A page is read whole to be added to (in the lookup's job beyond READ_AHEAD): a
# larger file is sent as it is, by the normal path.
MAX_PAGE: Final = 8 * 1024 * 1024

# What may follow a tag's name (HTML's tag name state): not "</bodyguard>".
_AFTER_NAME: Final = frozenset(bytes([c]) for c in b"\t\n\f\r />")
# An addition in ASCII would not be text in these encodings: such a page is sent as
# it is.
_WIDE_MARKS: Final = (b"\xff\xfe", b"\xfe\xff")


class Injection(NamedTuple):
    """What is added to each page, and the mark its pages' entity-tags carry."""

    snippet: bytes
    mark: str

    @classmethod
    def of(cls, snippet: bytes, *also: bytes) -> Injection:
        """Return the injection of ``snippet``, its mark hashed from it and ``also``.

        ``also`` is what the snippet brings with it (the script it loads): a change
        of either must change every page's entity-tag.
        """
        digest = hashlib.sha256(snippet)
        for part in also:
            digest.update(hashlib.sha256(part).digest())
        return cls(snippet, digest.hexdigest()[:12])


def inject(page: bytes, snippet: bytes) -> bytes | None:
    """Return ``page`` with ``snippet`` before its last ``</body>``, or at its end.

    None for a page that is not in an ASCII-compatible encoding (a UTF-16 byte order
    mark), where the snippet's bytes would not read as text.
    """
    if page.startswith(_WIDE_MARKS):
        return None
    # The last one, found from the end: an earlier one may be in a script's string.
    lowered = page.lower()
    end = len(page)
    while (at := lowered.rfind(b"</body", 0, end)) >= 0:
        if lowered[at + 6 : at + 7] in _AFTER_NAME:
            return page[:at] + snippet + page[at:]
        end = at
    return page + snippet


def injected_tag(tag: str | None, mark: str) -> str | None:
    """Return the entity-tag of a file's page with the injection ``mark`` added."""
    if tag is None:
        return None
    return f'{tag[:-1]}-live.{mark}"'
