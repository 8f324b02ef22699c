"""Where a request's file work runs: from the kernel's caches on the event loop, or in
one executor job; and the closing of sent files off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import io
import weakref
from collections.abc import Callable
from typing import Any, Final, Literal, TypeVar

from ._kernel import CACHE, CACHED_LOOKUPS, DISK, FileSystem, WouldBlock

__all__ = ("UseExecutor", "close_files", "closer", "run", "run_job")

_T = TypeVar("_T")

#: Where file work runs: "auto" on the loop when the kernel's caches answer it, else
#: in the executor; True always in the executor; False always on the loop.
UseExecutor = bool | Literal["auto"]

# How long a sent file may wait for another request's job to close it, and how many
# may wait at once: past either, a job of their own closes them.
_CLOSE_WITHIN: Final = 0.05
_MAX_WAITING: Final = 64


def check_use_executor(value: object) -> UseExecutor:
    """Return a valid ``use_executor`` value, or raise ValueError."""
    if value is True or value is False or value == "auto":
        return value
    raise ValueError(f"use_executor must be True, False or 'auto', not {value!r}")


async def run(use_executor: UseExecutor, work: Callable[[FileSystem], _T]) -> _T:
    """Run ``work(file_system)`` where ``use_executor`` says.

    In the automatic mode the work runs on the event loop with the cached-only file
    system; should any of its calls need I/O it raises WouldBlock, handing over what
    it opened, and runs again, whole, in one executor job, which first closes that.
    """
    if use_executor is False:
        return work(DISK)
    loop = asyncio.get_running_loop()
    if use_executor == "auto" and CACHED_LOOKUPS:
        CACHE.refresh()
        try:
            return work(CACHE)
        except WouldBlock as error:
            # What the attempt opened is closed by the job, before its own work.
            closer(loop).add(loop, *error.files)
    return await run_job(loop, executor_job, work)


def executor_job(
    work: Callable[[FileSystem], _T], closing: list[io.FileIO] | None = None
) -> _T:
    """Close the sent files waiting, then do a request's file work: one job."""
    if closing:
        close_files(closing)
    return work(DISK)


class _Closer:
    """Close sent files off the event loop, without a thread hop of their own.

    A worker thread wakes up in tens of microseconds, as long as the rest of a small
    response takes; so a sent file is handed to the next executor job of any file
    response on the same loop, which closes it first, or if none comes within
    ``_CLOSE_WITHIN`` seconds or ``_MAX_WAITING`` files wait, to one job that closes
    every file still waiting.  (The last close of a file unlinked meanwhile frees its
    blocks, which may wait on the disk.)
    """

    # No reference to the loop is kept: it is the key this closer is filed under.
    def __init__(self) -> None:
        self._files: list[io.FileIO] = []
        self._timer: asyncio.TimerHandle | None = None
        self._jobs: set[asyncio.Future[None]] = set()

    def __del__(self) -> None:
        # The loop is gone with files still waiting (closed within the 50 ms): close
        # them here rather than leave them to the collector's ResourceWarning.
        close_files(self._files)

    def add(self, loop: asyncio.AbstractEventLoop, *files: io.FileIO) -> None:
        """Have files closed by the next job, or by one of their own soon."""
        self._files.extend(files)
        if len(self._files) >= _MAX_WAITING:
            self._flush(loop)
        elif self._timer is None:
            self._timer = loop.call_later(_CLOSE_WITHIN, self._flush, loop)

    def take(self) -> list[io.FileIO]:
        """Hand the waiting files to a job that is about to run."""
        files = self._files
        if files:
            self._files = []
        return files

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if files := self.take():
            try:
                job = loop.run_in_executor(None, close_files, files)
            except RuntimeError:
                # The executor is shutting down with the loop: close them here.
                close_files(files)
                return
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)


_CLOSERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Closer] = (
    weakref.WeakKeyDictionary()
)


def closer(loop: asyncio.AbstractEventLoop) -> _Closer:
    """Return the closer of sent files for an event loop."""
    found = _CLOSERS.get(loop)
    if found is None:
        found = _CLOSERS[loop] = _Closer()
    return found


async def run_job(
    loop: asyncio.AbstractEventLoop, job: Callable[..., _T], *args: Any
) -> _T:
    """Run ``job(*args, closing)`` in the executor, ``closing`` the sent files waiting.

    Should the request be cancelled, the job may never run: its files go back to wait
    for another (closing one twice does no harm).
    """
    closing = closer(loop).take()
    try:
        return await loop.run_in_executor(None, job, *(*args, closing))
    except asyncio.CancelledError:
        closer(loop).add(loop, *closing)
        raise


def close_files(files: list[io.FileIO]) -> None:
    """Close files in an executor job; a failing close loses nothing of a sent file."""
    for file in files:
        with contextlib.suppress(OSError):
            file.close()
