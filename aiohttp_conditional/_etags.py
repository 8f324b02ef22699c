"""Entity-tags from a file's bytes, computed once per file identity."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Final

from ._clock import fs_now_ns
from ._platform import NONBLOCK, OPEN_FLAGS, pread
from ._preconditions import stable_from_ns

ETagFunction = Callable[[str, os.stat_result], "str | None"]
Identity = tuple[int, int, int, int, int]

# Hashes by file identity; the oldest is dropped first beyond this many.
_MAX_HASHES: Final = 4096
_READ_SIZE: Final = 256 * 1024
_HASHES: dict[Identity, str] = {}
_HASHES_LOCK: Final = threading.Lock()  # executor threads fill it side by side


class _Turn:
    """A version being hashed: its lock, and the threads that hold or await it."""

    __slots__ = ("lock", "threads")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.threads = 0


_IN_PROGRESS: dict[Identity, _Turn] = {}
# RFC 9110 §8.8.3: etagc = %x21 / %x23-7E / obs-text.
_OPAQUE: Final = re.compile(r"[\x21\x23-\x7e\x80-\U0010ffff]*\Z")


def file_identity(st: os.stat_result) -> Identity:
    """Return what tells one version of a file from another: device, inode, size,
    mtime and ctime (which moves when content or mtime is set)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def known_hash(st: os.stat_result) -> str | None:
    """Return the hash `content_hash` computed for this identity, if it is kept."""
    return _HASHES.get(file_identity(st))


def content_hash(path: str, st: os.stat_result) -> str | None:
    """Return the URL-safe base64 SHA-256 of a file's bytes, read once per identity.

    ``st`` is the stat the caller has of the file; None comes back if the file no
    longer matches it (it changed meanwhile), and the next call hashes it afresh.
    None comes back too while the file is not stable: until then a later version may
    share its identity (where the file system's clock is coarse, two writes of the
    same size within one tick do), so its hash is neither sent nor cached.
    """
    found = _HASHES.get(file_identity(st))
    if found is not None:
        return found
    if fs_now_ns() < stable_from_ns(st.st_mtime_ns, st.st_ctime_ns):
        return None
    # O_NONBLOCK: a FIFO swapped in for the file must not hold the thread in open().
    descriptor = os.open(path, OPEN_FLAGS | NONBLOCK)
    with open(descriptor, "rb", buffering=0) as file:
        return hash_open_file(file, st)


def hash_open_file(file: io.FileIO, st: os.stat_result) -> str | None:
    """Return `content_hash` of a file already open, which must be the one ``st`` is.

    It reads at offsets, so the file's own position is left where it was, for
    whoever sends it next.
    """
    key = file_identity(st)
    found = _HASHES.get(key)
    if found is not None:
        return found
    if fs_now_ns() < stable_from_ns(st.st_mtime_ns, st.st_ctime_ns):
        return None
    with _hashing(key):
        found = _HASHES.get(key)  # hashed by another thread while this one waited
        if found is not None:
            return found
        return _hash(file, key)


@contextlib.contextmanager
def _hashing(key: Identity) -> Iterator[None]:
    """Let one thread at a time hash a version: the others wait for its hash.

    Without it, N requests for a new version of a large file at once each read
    the whole file.
    """
    with _HASHES_LOCK:
        turn = _IN_PROGRESS.get(key)
        if turn is None:
            turn = _IN_PROGRESS[key] = _Turn()
        turn.threads += 1
    try:
        with turn.lock:
            yield
    finally:
        with _HASHES_LOCK:
            turn.threads -= 1
            if turn.threads == 0:
                del _IN_PROGRESS[key]


def _hash(file: io.FileIO, key: Identity) -> str | None:
    fd = file.fileno()
    if file_identity(os.fstat(fd)) != key:
        return None
    sha256 = hashlib.sha256()
    offset = 0
    while chunk := pread(fd, _READ_SIZE, offset):
        sha256.update(chunk)
        offset += len(chunk)
    if file_identity(os.fstat(fd)) != key:
        return None  # written to while read
    found = base64.urlsafe_b64encode(sha256.digest()).decode("ascii")
    with _HASHES_LOCK:
        if len(_HASHES) >= _MAX_HASHES:
            del _HASHES[next(iter(_HASHES))]
        _HASHES[key] = found
    return found


def checked_tag(function: ETagFunction, path: str, st: os.stat_result) -> str | None:
    """Call an ETag function; return its tag quoted, None for no tag."""
    opaque = function(path, st)
    if opaque is None:
        return None
    if not isinstance(opaque, str) or not _OPAQUE.match(opaque):
        raise ValueError(f"an ETag function returned {opaque!r}, not an opaque-tag")
    return f'"{opaque}"'
