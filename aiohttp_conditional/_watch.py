"""Watch a directory tree and tell each burst of changes under it as one.

watchfiles does the watching (inotify on Linux, the native APIs elsewhere) and the
coalescing: a burst is over once nothing has changed for `QUIET_MS`.  What it does not
do is follow a directory deleted and made anew, as builds that begin with
``rm -rf site`` do: its watches go with the old directory, and it waits on nothing
ever after.  So the directory is looked at every `CHECK_MS`: one deleted (its number
may come back at once) or replaced is watched anew, and once it is, its whole tree
is told as changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = ("INSTALL", "MAX_WAIT_MS", "QUIET_MS", "check_watcher", "watch")

INSTALL: Final = "pip install 'aiohttp-conditional[live]'"
# A burst is over once nothing changed for QUIET_MS; a burst that goes on is told of
# every MAX_WAIT_MS all the same.
QUIET_MS: Final = 100
MAX_WAIT_MS: Final = 2000
CHECK_MS: Final = 500  # how often the directory is looked at
_LOG: Final = logging.getLogger("aiohttp_conditional")


def check_watcher() -> None:
    """Raise ImportError, saying what to install, where watchfiles is missing."""
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        raise ImportError(f"live reload needs watchfiles: {INSTALL}") from None


def _identity(root: str) -> tuple[int, int] | None:
    try:
        st = os.stat(root)
    except OSError:
        return None
    return st.st_dev, st.st_ino


async def watch(
    root: str,
    wanted: Callable[[str], bool],
    changed: Callable[[Iterable[str]], None],
    stop: asyncio.Event,
) -> None:
    """Call ``changed`` with the paths of each burst of changes under ``root``.

    ``wanted`` tells which paths count (watchfiles' default filter applies first:
    editors' swap files, ``.git``, ``node_modules``...).  Returns once ``stop`` is
    set.  Should watching fail (no inotify watches left), it says so in the log and
    returns: files are still served, pages no longer reloaded.
    """
    from watchfiles import DefaultFilter, awatch

    default = DefaultFilter()

    def counts(change: Any, path: str) -> bool:
        return default(change, path) and wanted(path)

    identity = _identity(root)
    # Whether to tell of the whole tree at the next chance, once it is watched: it
    # was made anew, and what was written in it before the watch is not known.
    anew = False
    while not stop.is_set():
        if identity is None:
            # Gone: wait for it to be made again.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), CHECK_MS / 1000)
            identity = _identity(root)
            continue
        try:
            async with contextlib.aclosing(
                awatch(
                    root,
                    watch_filter=counts,
                    debounce=MAX_WAIT_MS,
                    step=QUIET_MS,
                    stop_event=stop,
                    rust_timeout=CHECK_MS,
                    yield_on_timeout=True,
                    ignore_permission_denied=True,
                )
            ) as bursts:
                async for burst in bursts:
                    paths = [path for _, path in burst]
                    # Deleted (its number may come back at once) or another one: told
                    # once the new one is watched, not now, when pages would reload
                    # into a 404.
                    if root in paths or _identity(root) != identity:
                        identity = _identity(root)
                        anew = True
                        break
                    if anew:
                        paths.append(root)
                        anew = False
                    if paths:
                        changed(paths)
        except Exception:
            _LOG.exception("live reload stopped watching %s", root)
            return
