"""Find the precompressed variants that stand beside a file."""

from __future__ import annotations

import os
from stat import S_ISREG
from typing import Final, NamedTuple

# Suffix and content-coding, in the order aiohttp's FileResponse prefers them.
VARIANTS: Final = ((".br", "br"), (".gz", "gzip"))


class Variant(NamedTuple):
    """The file chosen to answer a request and what was learned choosing it."""

    path: str
    stat: os.stat_result | None  # the variant's lstat; None for the original file
    encoding: str | None  # the Content-Encoding of a variant; None for the original
    has_variants: bool  # whether any variant exists, so the response needs Vary


def select_variant(path: str, accept_encoding: str) -> Variant:
    """Return the variant of ``path`` to send for a lower-cased Accept-Encoding.

    Only regular files count: a symlinked or special variant is ignored, as upstream
    does.  A variant the client does not accept is still looked for, once, so that every
    response for a file with variants carries ``Vary: Accept-Encoding``.
    """
    has_variants = False
    for suffix, coding in VARIANTS:
        accepted = coding in accept_encoding
        if has_variants and not accepted:
            continue
        variant = path + suffix
        try:
            # Most files have no variants: asking first is cheaper than a failing lstat.
            if not os.access(variant, os.F_OK, follow_symlinks=False):
                continue
            st = os.lstat(variant)
        except (OSError, ValueError):
            continue
        if not S_ISREG(st.st_mode):
            continue
        if accepted:
            return Variant(variant, st, coding, True)
        has_variants = True
    return Variant(path, None, None, has_variants)
