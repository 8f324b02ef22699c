"""The clock that file systems stamp changes with, as far as validators depend on it.

A validator is only as good as the timestamp behind it, and the kernel does not stamp
a change with the clock ``time.time_ns()`` reads.  Linux stamps most changes with its
coarse clock (``ktime_get_coarse_real_ts64``), which stands still between scheduler
ticks (1 to 10 ms) and so lags the fine clock; since 6.13 a change made right after a
stat may get a fine stamp instead, never earlier than the coarse clock.  Windows
stamps with its 15.6 ms system tick.  macOS and the BSDs stamp with a microsecond
clock.
"""

from __future__ import annotations

import sys
import time
from typing import Final, NamedTuple

__all__ = ("FS_LAG_NS", "Moment", "fs_now_ns", "moment")

# How far a file's timestamp may lag the clock the Date header is read from, at the
# moment of the change.  One tick on Linux (10 ms at HZ=100), several where ticks stall
# (the kernel takes the clock over from a stalled CPU after five); 15.6 ms on Windows.
# A tenth of a second covers each with room to spare.
FS_LAG_NS: Final = 100_000_000

# CLOCK_REALTIME_COARSE: Python names no constant for it; it is 5 on every Linux.
_COARSE: Final = getattr(time, "CLOCK_REALTIME_COARSE", 5)


def _has_coarse_clock() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        time.clock_gettime_ns(_COARSE)
    except OSError:
        return False
    return True


if _has_coarse_clock():

    def fs_now_ns() -> int:
        """Return a time that no later change of a file can be stamped before.

        On Linux that is the coarse clock itself: the kernel stamps a change with it,
        or with a finer clock that is never behind it, and it only moves forward
        unless someone sets the system clock back.
        """
        return time.clock_gettime_ns(_COARSE)

else:

    def fs_now_ns() -> int:
        """Return a time that no later change of a file can be stamped before.

        Here the file system's clock is not ours to read: the fine clock less the
        most a file's timestamp may lag it.
        """
        return time.time_ns() - FS_LAG_NS


class Moment(NamedTuple):
    """When an answer was decided, read before the file is looked at."""

    fs_ns: int  # by fs_now_ns: no change the answer did not see is stamped before it
    date: int  # the whole second of time.time() then: the answer's Date


def moment() -> Moment:
    """Return the moment an answer is decided, to be read before the file's stat.

    The Date of the answer must not be later than a change the answer did not see,
    or a cache that sends that Date as If-Modified-Since would be told the change
    is older: so it is taken here, not when the headers are sent.  The fine clock is
    read after the coarse one, so that Date is never before ``fs_ns``.
    """
    fs_ns = fs_now_ns()
    return Moment(fs_ns, int(time.time()))
