"""Which names in a URL path may reach a file, by the rules of its file system.

Windows reads a name as more than it says: ``secret.txt.`` and ``secret.txt `` open
``secret.txt``, ``name::$DATA`` is its data stream, ``D:`` another drive, ``NUL``
or ``COM1.txt`` a device wherever it is asked for, and ``ENV~1`` is the 8.3 short
name of ``.env``, which no dotfile rule would recognise.  File systems that fold
case (NTFS, APFS and HFS+ as macOS formats them, FAT and exFAT) open ``App.JS`` for
``app.js``, so a rule about names could be passed by changing their case.  A route
refuses all of those: on such a file system a name reaches a file only as its
directory spells it.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from typing import Final

from ._clock import fs_now_ns
from ._kernel import FileSystem, WouldBlock
from ._preconditions import stable_from_ns

__all__ = ("DirectoryNames", "refused_on_windows")

# Device names Windows opens in every directory, with any extension; the digits
# include the superscripts Windows also takes.
_DEVICES: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {
        f"{port}{digit}"
        for port in ("COM", "LPT")
        for digit in "0123456789\u00b9\u00b2\u00b3"
    }
)
# Characters no Windows file name holds; ":" also names a drive or a stream.
_NOT_IN_NAMES: Final = re.compile(r'[\x00-\x1f<>:"|?*\\/]')
# The shape of a generated 8.3 short name: up to eight characters ending in "~" and
# a number, and an extension of up to three.
_SHORT_NAME: Final = re.compile(r"[^.]{0,7}~[0-9]{1,6}(?:\.[^.]{0,3})?\Z")

# The most names kept for the exact-name check, of all directories together (a few
# megabytes): a directory with more is read again for each request.
_MAX_NAMES: Final = 50_000


def refused_on_windows(name: str) -> bool:
    """Tell whether Windows would open something else than ``name`` says.

    A drive or a stream (``:``), a trailing dot or space, a device, a character no
    name may hold, or the shape of a short name.
    """
    if _NOT_IN_NAMES.search(name) or name[-1:] in (".", " "):
        return True
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    return stem in _DEVICES or _SHORT_NAME.match(name) is not None


class DirectoryNames:
    """The names each directory spells its entries with, for the exact-name check.

    A directory's names are kept by its identity, mtime and ctime, and only once it
    is stable (see `stable_from_ns`): an entry made, removed or renamed since moves
    its mtime (and, but on Windows, its ctime).  A name is spelled so if it is one
    of the entries, or in Unicode's NFC form (as browsers send names) the NFC form
    of one: macOS takes a name in either form for the same file.  A name that
    normalizes to another (the Kelvin sign to K) is neither.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[tuple[int, int], tuple[int, int, frozenset[str]]] = {}
        self._count = 0  # of the names kept

    def spells(
        self, directory: str, st: os.stat_result, name: str, fs: FileSystem
    ) -> bool:
        """Tell whether ``directory`` (``st``, its stat) spells an entry ``name``."""
        key = (st.st_dev, st.st_ino)
        kept = self._kept.get(key)
        if kept is not None and kept[:2] == (st.st_mtime_ns, st.st_ctime_ns):
            names = kept[2]
        else:
            if not fs.may_block:
                raise WouldBlock(directory)  # a directory's entries may not be cached
            entries = os.listdir(directory)
            # An NFC form is normalized: a name that is not, such as the Kelvin
            # sign's, is in here only as an entry itself.
            names = frozenset(entries).union(
                unicodedata.normalize("NFC", entry) for entry in entries
            )
            if len(names) <= _MAX_NAMES and fs_now_ns() >= stable_from_ns(
                st.st_mtime_ns, st.st_ctime_ns
            ):
                self._keep(key, (st.st_mtime_ns, st.st_ctime_ns, names))
        return name in names

    def _keep(
        self, key: tuple[int, int], kept: tuple[int, int, frozenset[str]]
    ) -> None:
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self._count -= len(old[2])
            while self._kept and self._count + len(kept[2]) > _MAX_NAMES:
                self._count -= len(self._kept.pop(next(iter(self._kept)))[2])
            self._kept[key] = kept
            self._count += len(kept[2])
