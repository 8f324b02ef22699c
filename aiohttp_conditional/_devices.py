"""What the file system on each device can tell: whether names fold case, and
whether ``st_ctime`` is a change time.

On Windows names fold and there is no change time (CPython's ``st_ctime`` is the
creation time); on macOS names fold and APFS and HFS+ keep a change time.  On Linux
both depend on the file system, read by type from ``/proc/self/mountinfo`` for each
device when it is first seen and again a second later at the soonest, since a
device number is reused once its file system is unmounted.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Final, NamedTuple

from ._platform import CTIME_IS_CHANGE, FOLDS_CASE, LINUX

__all__ = ("folds_case", "keeps_change_time")

# Types of file system that fold case, or may: fuseblk is what the FUSE drivers of
# exFAT and NTFS mount as; 9p and drvfs are how WSL mounts Windows drives;
# virtiofs, vboxsf, prl_fs and Docker Desktop's fakeowner and grpcfuse how virtual
# machines mount their host's folders (a Mac's or a Windows host's, which fold).
_FOLDING: Final = frozenset(
    {
        "9p",
        "apfs",
        "cifs",
        "drvfs",
        "exfat",
        "fakeowner",
        "fuse.grpcfuse",
        "fuse.osxfs",
        "fuse.vmhgfs-fuse",
        "fuseblk",
        "hfs",
        "hfsplus",
        "iso9660",
        "msdos",
        "ntfs",
        "ntfs3",
        "prl_fs",
        "smb3",
        "vboxsf",
        "vfat",
        "virtiofs",
    }
)
# Types of file system that keep no change time: FAT and exFAT have none, and their
# drivers report the mtime in its place, which cp -p or touch -d set back.
_NO_CHANGE_TIME: Final = frozenset({"exfat", "fuseblk", "msdos", "vfat"})
_RECHECK_NS: Final = 1_000_000_000
_MAX_DEVICES: Final = 256


class _Device(NamedTuple):
    folds_case: bool
    keeps_change_time: bool
    read_ns: int


_DEVICES: dict[int, _Device] = {}
_LOCK: Final = threading.Lock()


def folds_case(device: int) -> bool:
    """Tell whether names on ``device`` (an ``st_dev``) may fold case."""
    if FOLDS_CASE:
        return True
    return LINUX and _device(device).folds_case


def keeps_change_time(device: int) -> bool:
    """Tell whether ``st_ctime`` on ``device`` moves with every change of a file."""
    if not CTIME_IS_CHANGE:
        return False
    return not LINUX or _device(device).keeps_change_time


def _device(device: int) -> _Device:
    now = time.monotonic_ns()
    found = _DEVICES.get(device)
    if found is None or now - found.read_ns > _RECHECK_NS:
        kind = _type_of(device)
        found = _Device(kind in _FOLDING, kind not in _NO_CHANGE_TIME, now)
        with _LOCK:
            if len(_DEVICES) >= _MAX_DEVICES:
                _DEVICES.clear()
            _DEVICES[device] = found
    return found


def _type_of(device: int) -> str | None:
    """Return the type of the file system on ``device``, None if it is not known."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
            lines = table.read().splitlines()
    except OSError:
        return None
    wanted = f"{os.major(device)}:{os.minor(device)}"
    for line in lines:
        # ID parent major:minor root mountpoint options [tags] - type ...
        fields = line.split()
        with contextlib.suppress(ValueError, IndexError):
            if fields[2] == wanted:
                return fields[fields.index("-") + 1]
    return None
