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
_UNSAFE_IN_FALLBACK: Final = re.compile(r'[^\x20-\x7e]|["\\/]')
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
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
    # A name is a name, not a path: only its last part counts, and no control
    # character (CR, LF, NUL...) is passed on, even encoded.
    name = _CONTROL.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1])
    name = name or _FALLBACK_NAME
    fallback = _fallback(name)
    value = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        encoded = urllib.parse.quote(name.encode("utf-8", "replace"), safe=_ATTR_CHAR)
        value += f"; filename*=UTF-8''{encoded}"
    return value


def _fallback(name: str) -> str:
    """Return the name in ASCII that is safe inside a quoted-string."""
    decomposed = unicodedata.normalize("NFKD", name)
    if all(c.isascii() or unicodedata.combining(c) for c in decomposed):
        # Only accents to take off: "Résumé.pdf" is saved as "Resume.pdf".
        name = "".join(c for c in decomposed if c.isascii())
    # Trailing dots and spaces are dropped where the name is saved on Windows.
    safe = _UNSAFE_IN_FALLBACK.sub("_", name).strip(" ").rstrip(".")
    return safe or _FALLBACK_NAME
