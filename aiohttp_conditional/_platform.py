"""What the operating system offers, decided once at import.

CPython's ``os`` differs by platform: Windows has no ``pread``, no ``O_NONBLOCK``
and no ``O_CLOEXEC``, opens files in text mode unless told ``O_BINARY``, refuses
``os.access(..., follow_symlinks=False)``, calls a directory junction neither a
link nor anything but a directory, and gives the creation time as ``st_ctime``.
A C library may lack a call the kernel has (musl before 1.2.5 without faccessat2
answers ``EINVAL`` where a link must not be followed).  Each choice is made here,
once, so that a request takes the fastest path the platform has.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Final

__all__ = (
    "CTIME_IS_CHANGE",
    "FOLDS_CASE",
    "LINUX",
    "NOFOLLOW",
    "NONBLOCK",
    "OPEN_FLAGS",
    "WINDOWS",
    "entry_is_link",
    "is_link",
    "lstat_or_none",
    "pread",
)

#: Whether the platform's rules for file names are Windows's (see `_names`).
WINDOWS: Final = sys.platform == "win32"
#: Whether sockets sharing a port with SO_REUSEPORT share its connections too.
LINUX: Final = sys.platform.startswith("linux")
#: Whether ``st_ctime`` moves whenever content or metadata does.  On Windows it is
#: the time the file was made, which an in-place write leaves alone.
CTIME_IS_CHANGE: Final = not WINDOWS
#: Whether the platform's usual file systems take a name in another case for the
#: same file (NTFS; APFS and HFS+ as macOS formats them).
FOLDS_CASE: Final = sys.platform in ("win32", "darwin")

# Binary mode where text mode exists (Windows), so that no byte is translated.
OPEN_FLAGS: Final = (
    os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
)
NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
# A FIFO swapped in for a file must not hold a thread in open(); Windows has none.
NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)

# stat.IO_REPARSE_TAG_MOUNT_POINT, named where Python knows it (Windows).
_JUNCTION: Final = 0xA0000003


if WINDOWS:

    def is_link(st: os.stat_result) -> bool:
        """Tell whether an lstat is of a symlink or of a directory junction.

        A junction leads elsewhere as a symlink does, but ``S_ISLNK`` does not say so.
        """
        return stat.S_ISLNK(st.st_mode) or getattr(st, "st_reparse_tag", 0) == _JUNCTION

    def entry_is_link(entry: os.DirEntry[str]) -> bool:
        """Tell whether a directory's entry is a symlink or a directory junction.

        By its lstat, which Windows gives with the entry (``is_junction`` is only
        there from Python 3.12).
        """
        return entry.is_symlink() or is_link(entry.stat(follow_symlinks=False))

else:

    def is_link(st: os.stat_result) -> bool:
        """Tell whether an lstat is of a symlink."""
        return stat.S_ISLNK(st.st_mode)

    def entry_is_link(entry: os.DirEntry[str]) -> bool:
        """Tell whether a directory's entry is a symlink."""
        return entry.is_symlink()


if hasattr(os, "pread"):
    pread = os.pread
else:

    def pread(fd: int, size: int, offset: int) -> bytes:
        """Read up to ``size`` bytes at ``offset``, leaving the file's position alone.

        Where there is no ``os.pread`` (Windows), by seeking, the position put back
        for whoever reads the file next.  A descriptor is read by one request, one
        read at a time, so no other read moves the position meanwhile.
        """
        position = os.lseek(fd, 0, os.SEEK_CUR)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            return os.read(fd, size)
        finally:
            os.lseek(fd, position, os.SEEK_SET)


def _access_sees_links() -> bool:
    """Tell whether ``os.access`` answers, for a path that exists, without following it.

    Windows raises NotImplementedError; musl's faccessat on a kernel without
    faccessat2 fails with EINVAL, which ``os.access`` reports as "not there".
    """
    if os.access not in os.supports_follow_symlinks:
        return False
    try:
        return os.access(__file__, os.F_OK, follow_symlinks=False)
    except (NotImplementedError, OSError, ValueError):
        return False


#: Whether asking ``os.access`` first is the cheap way to look for a name.
_ACCESS_SEES_LINKS: Final = _access_sees_links()


if _ACCESS_SEES_LINKS:

    def lstat_or_none(path: str) -> os.stat_result | None:
        """Return the lstat of a path, or None when nothing is there."""
        # Most files have no variants: asking first is cheaper than a failing lstat.
        if not os.access(path, os.F_OK, follow_symlinks=False):
            return None
        return os.lstat(path)

else:

    def lstat_or_none(path: str) -> os.stat_result | None:
        """Return the lstat of a path, or None when nothing is there."""
        try:
            return os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
