"""Content-Disposition for a file to be saved or shown (RFC 6266, RFC 8187)."""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from typing import Final

__all__ = ("DISPOSITIONS", "content_disposition")

DISPOSITIONS: Final = ("attachment", "inline")

# What may stand inside the quoted filename of the fallback: visible ASCII and the
# space, but no quote or backslash (which a quoted-string would have to escape, and
# which some clients get wrong), and no path separator.
_UNSAFE_IN_FALLBACK: Final = re.compile(r'[^\x20-\x7e]|["\\/%]')
# Control, format, line and paragraph separators, and surrogates.
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# RFC 8187 §3.2.1: attr-char, what stands unencoded in an ext-value.
_ATTR_CHAR: Final = "!#$&+-.^_`|~"
_FALLBACK_NAME: Final = "download"


def content_disposition(disposition: str, filename: str | None) -> str:
    """Return a Content-Disposition value: ``disposition`` with ``filename``, if any.

    A name of plain ASCII goes as ``filename="..."``.  Any other gets ``filename*``
    (RFC 8187, UTF-8), which current clients prefer, after a ``filename`` fallback
    for the others (RFC 6266 §4.3): the name with accents taken off and what is
    still not ASCII replaced.  Path separators, quotes, backslashes and control
    characters (CR and LF among them) never reach the fallback, and reach the
    ``filename*`` only percent-encoded, so no name can add a field or a directory.
    """
    if disposition not in DISPOSITIONS:
        raise ValueError(f"disposition must be one of {DISPOSITIONS}: {disposition!r}")
    if filename is None:
        return disposition
    name = _clean(filename)
    fallback = _fallback(name)
    value = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        encoded = urllib.parse.quote(name.encode("utf-8", "replace"), safe=_ATTR_CHAR)
        value += f"; filename*=UTF-8''{encoded}"
    return value


def _clean(filename: str) -> str:
    """Return the name to offer: a name, not a path, that no client can misread.

    Only the last part of a path counts; control, format and separator characters
    (CR, LF, NUL, a right-to-left override that hides the real extension) and lone
    surrogates become "_"; trailing dots and spaces go (Windows drops them); what
    is left of "." or ".." is no name at all.
    """
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        "_" if unicodedata.category(character) in _UNSAFE_CATEGORIES else character
        for character in name
    )
    name = name.rstrip(". ")
    return name if name.strip(".") else _FALLBACK_NAME


def _fallback(name: str) -> str:
    """Return the name in ASCII that is safe inside a quoted-string."""
    decomposed = unicodedata.normalize("NFKD", name)
    if all(c.isascii() or unicodedata.combining(c) for c in decomposed):
        # Only accents to take off: "Résumé.pdf" is saved as "Resume.pdf".
        name = "".join(c for c in decomposed if c.isascii())
    # Trailing dots and spaces are dropped where the name is saved on Windows.
    safe = _UNSAFE_IN_FALLBACK.sub("_", name).strip(" ").rstrip(".")
    return safe or _FALLBACK_NAME
