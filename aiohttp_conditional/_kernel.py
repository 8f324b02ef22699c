"""The platform seam: file-system calls that may block, and those that never do.

A request's file work is written once, against a `FileSystem`.  `DISK` is the plain
calls, for an executor job (or for the event loop when the caller asks for it).
`CACHE` answers only from the kernel's caches, for the event loop: on Linux 5.12 and
later, ``openat2(2)`` with ``RESOLVE_CACHED`` walks a path only through the dentry
cache and fails with ``EAGAIN`` where a step would need I/O, a name known to be
missing answering ``ENOENT`` at once; ``preadv2(2)`` with ``RWF_NOWAIT`` reads only
what the page cache holds.  Attributes are asked of a file only on a local file
system, where they live in memory with its inode: a network or FUSE file system may
ask its server even for a cached name.  Anything `CACHE` cannot answer so raises
`WouldBlock`, and the whole request goes to the executor job instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import os
import platform
import select
import struct
import sys
import threading
from typing import Any, Final

from ._platform import NOFOLLOW, OPEN_FLAGS, lstat_or_none, pread

__all__ = (
    "CACHE",
    "CACHED_LOOKUPS",
    "DISK",
    "LOCAL_FILE_SYSTEMS",
    "FileSystem",
    "WouldBlock",
)

# File systems whose attributes and cached names live in memory with the inode, so
# that reading them never waits on a device or a server.  overlay counts: its layers
# are local directories wherever containers use it (one whose lower layer is on NFS
# is taken for local too).
LOCAL_FILE_SYSTEMS: Final = frozenset(
    {
        "bcachefs",
        "btrfs",
        "erofs",
        "exfat",
        "ext2",
        "ext3",
        "ext4",
        "f2fs",
        "hfsplus",
        "iso9660",
        "jfs",
        "msdos",
        "ntfs3",
        "overlay",
        "ramfs",
        "squashfs",
        "tmpfs",
        "udf",
        "vfat",
        "xfs",
        "zfs",
    }
)
# Of those, the ones whose every name and inode is in memory: looking up a name there
# never reads a device, though the kernel keeps no entry for a name found missing.
_MEMORY_FILE_SYSTEMS: Final = frozenset({"ramfs", "tmpfs"})


class WouldBlock(Exception):
    """The kernel cannot answer from its caches: the work must run where it may wait.

    Not an OSError, so that no handler of a missing or unreadable file takes it.
    ``files`` are files the attempt opened and left for the job to close: the last
    close of a file unlinked meanwhile frees its blocks, which may wait on the disk.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.files: list[io.FileIO] = []


class FileSystem:
    """The calls a request's file work makes, each as the plain ``os`` call does.

    This one may block: for executor jobs, or the event loop when asked for.
    """

    #: Whether calls may wait for a disk or a server.
    may_block: bool = True

    def refresh(self) -> None:
        """Learn of file systems mounted or gone since the last call: once a request."""

    def stat(self, path: str) -> os.stat_result:
        """Return the stat of a path, following a symlink."""
        return os.stat(path)

    def lstat(self, path: str) -> os.stat_result:
        """Return the stat of a path, not following a symlink at its end."""
        return os.lstat(path)

    def probe(
        self, path: str, near: os.stat_result | None = None
    ) -> os.stat_result | None:
        """Return the lstat of a path, or None when nothing is there.

        ``near`` is the stat of a file in the same directory, if one is known.
        """
        return lstat_or_none(path)

    def open(self, path: str, flags: int) -> int:
        """Open a path for reading with extra ``flags``; return the descriptor."""
        return os.open(path, OPEN_FLAGS | flags)

    def read(self, fd: int, size: int, offset: int) -> bytes | None:
        """Read up to ``size`` bytes at ``offset``: fewer only at the end of the file.

        None is for a file system that cannot read without blocking and cannot tell
        whether it would have to: the caller streams the body instead.
        """
        return pread(fd, size, offset)


DISK: Final = FileSystem()


def _machine_has_openat2() -> bool:
    # openat2 has the same number on every architecture that numbers its system calls
    # alike (all since Linux 5.1); elsewhere it is not looked for.
    return sys.platform == "linux" and platform.machine() in {
        "aarch64",
        "armv7l",
        "i686",
        "ppc64le",
        "riscv64",
        "s390x",
        "x86_64",
    }


_FS_ENCODING: Final = sys.getfilesystemencoding()
_FS_ERRORS: Final = sys.getfilesystemencodeerrors()
_SYS_OPENAT2: Final = 437
_AT_FDCWD: Final = -100
_AT_EMPTY_PATH: Final = 0x1000
_AT_STATX_DONT_SYNC: Final = 0x4000
_RESOLVE_CACHED: Final = 0x20
_O_PATH: Final = getattr(os, "O_PATH", 0)
# struct statx: stx_dev_major and stx_dev_minor, the device the file lives on.
_STATX_SIZE: Final = 256
_STATX_DEVICE: Final = struct.Struct("II")
_STATX_DEVICE_OFFSET: Final = 0x88
_STATX_FLAGS: Final = _AT_EMPTY_PATH | _AT_STATX_DONT_SYNC
# What a cached lookup may answer on its own: anything else (EAGAIN for a step not
# cached, EMFILE at the descriptor limit, EPERM or ENOSYS from a seccomp profile)
# is left to the job, whose plain calls need no descriptor.
_ANSWERS: Final = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ELOOP, errno.ENAMETOOLONG}
)


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


class _Mounts:
    """Which devices hold a local file system, from ``/proc/self/mountinfo``.

    Read again whenever the kernel reports that the mount table changed (a device
    number is reused once its file system is gone), which costs one epoll call a
    request; an unknown device is never local.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: (major, minor) of each device that holds a local file system.
        self.local: frozenset[tuple[int, int]] = frozenset()
        #: st_dev of each device that holds a file system wholly in memory.
        self.memory: frozenset[int] = frozenset()
        self._open()
        # A forked child shares the open table and would swallow its parent's notice
        # of a change (or the parent the child's): each process watches on its own.
        os.register_at_fork(after_in_child=self._reopen)

    def _open(self) -> None:
        self._fd = os.open("/proc/self/mountinfo", OPEN_FLAGS)
        self._changes = select.epoll()
        self._changes.register(self._fd, select.EPOLLPRI | select.EPOLLERR)
        self._reread()

    def _reopen(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._changes.close()
        os.close(self._fd)
        self._open()

    def _reread(self) -> None:
        with self._lock:
            os.lseek(self._fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(self._fd, 65536):
                chunks.append(chunk)
            local = set()
            memory = set()
            for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
                # ID parent major:minor root mountpoint options [tags] - type ...
                fields = line.split()
                with contextlib.suppress(ValueError, IndexError):
                    major, minor = map(int, fields[2].split(":"))
                    fs_type = fields[fields.index("-") + 1]
                    if fs_type in LOCAL_FILE_SYSTEMS:
                        local.add((major, minor))
                    if fs_type in _MEMORY_FILE_SYSTEMS:
                        memory.add(os.makedev(major, minor))
            self.local = frozenset(local)
            self.memory = frozenset(memory)

    def refresh(self) -> None:
        """Read the mount table again if it changed since it was last read."""
        if self._changes.poll(0):
            self._reread()


class _CachedFileSystem(FileSystem):
    """Answer only from the kernel's caches, on local file systems; else WouldBlock.

    Each call is written for speed: it is on the event loop of every request.
    """

    may_block = False

    def __init__(self, syscall: Any, statx: Any) -> None:
        self._syscall = syscall
        self._statx = statx
        self._hows: dict[int, Any] = {}
        self._buffers = threading.local()
        self.mounts = _Mounts()

    def refresh(self) -> None:
        """Learn of file systems mounted or gone since the last call: once a request."""
        self.mounts.refresh()

    def _open(self, path: str, flags: int) -> int:
        """Open a path through the dentry cache only; -errno where that fails."""
        how = self._hows.get(flags)
        if how is None:
            how = self._hows[flags] = ctypes.byref(
                _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_CACHED)
            )
        # os.fsencode, without its call.
        name = path.encode(_FS_ENCODING, _FS_ERRORS)
        fd: int = self._syscall(_SYS_OPENAT2, _AT_FDCWD, name, how, 24)
        if fd < 0:
            code = ctypes.get_errno()
            if code not in _ANSWERS:
                raise WouldBlock(path)
            return -code
        return fd

    def _check_local(self, fd: int, path: str) -> None:
        """Raise WouldBlock, closing ``fd``, unless it is on a local file system."""
        buffer = getattr(self._buffers, "statx", None)
        if buffer is None:
            buffer = self._buffers.statx = ctypes.create_string_buffer(_STATX_SIZE)
        # DONT_SYNC: the device, as cached, without asking any server.
        if self._statx(fd, b"", _STATX_FLAGS, 0, buffer) or (
            _STATX_DEVICE.unpack_from(buffer, _STATX_DEVICE_OFFSET)
            not in self.mounts.local
        ):
            os.close(fd)
            raise WouldBlock(path)

    def _stat(self, path: str, flags: int) -> os.stat_result | None:
        fd = self._open(path, flags)
        if fd < 0:
            if fd == -errno.ENOENT:
                return None
            raise OSError(-fd, os.strerror(-fd), path)
        self._check_local(fd, path)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def stat(self, path: str) -> os.stat_result:
        """Return the stat of a path, following a symlink, from the caches only."""
        st = self._stat(path, _O_PATH)
        if st is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return st

    def lstat(self, path: str) -> os.stat_result:
        """Return the lstat of a path from the caches only."""
        st = self._stat(path, _O_PATH | NOFOLLOW)
        if st is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return st

    def probe(
        self, path: str, near: os.stat_result | None = None
    ) -> os.stat_result | None:
        """Return the lstat of a path, or None when the cache knows it is missing.

        Beside a file on tmpfs or ramfs (``near``), whose directories are wholly in
        memory but which keep no entry for a missing name, a name the cache does
        not know is looked up for real: that never reads a device.
        """
        try:
            return self._stat(path, _O_PATH | NOFOLLOW)
        except WouldBlock:
            if near is None or near.st_dev not in self.mounts.memory:
                raise
        try:
            return os.lstat(path)
        except FileNotFoundError:
            return None

    def open(self, path: str, flags: int) -> int:
        """Open a path for reading from the caches only."""
        # As os.open() does, so that audit hooks see every file opened.
        sys.audit("open", path, None, OPEN_FLAGS | flags)
        fd = self._open(path, os.O_RDONLY | flags)
        if fd < 0:
            raise OSError(-fd, os.strerror(-fd), path)
        self._check_local(fd, path)
        return fd

    def read(self, fd: int, size: int, offset: int) -> bytes | None:
        """Read exactly ``size`` bytes at ``offset`` from the page cache only.

        Unlike the plain read, a short read is no answer: the job tells whether the
        pages were not all cached or the file shrank.  None where the file system
        cannot read without blocking (tmpfs, overlay): stream it instead, as large
        bodies are.
        """
        buffer = bytearray(size)
        try:
            count = os.preadv(fd, [buffer], offset, os.RWF_NOWAIT)
        except BlockingIOError:
            raise WouldBlock(fd) from None
        except OSError as error:
            if error.errno == errno.EOPNOTSUPP:
                return None
            raise
        if count < size:
            # Partly cached, or the file shrank: the job finds out which.
            raise WouldBlock(fd)
        return bytes(buffer)


def _cached_file_system() -> _CachedFileSystem | None:
    """Return the cached-only file system, or None where the kernel offers none."""
    if not _machine_has_openat2() or not hasattr(os, "RWF_NOWAIT") or not _O_PATH:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        openat2 = libc.syscall
        statx = libc.statx
    except (OSError, AttributeError):
        return None  # a C library without statx (musl before 1.2.5)
    # No argtypes: each argument is passed as a C int or a pointer already, and
    # converting them would cost more than the call.
    openat2.restype = ctypes.c_long
    statx.restype = ctypes.c_int
    # Older kernels answer ENOSYS, or EINVAL for RESOLVE_CACHED; a seccomp profile
    # may answer EPERM or ENOSYS: then every request takes the job.
    how = _OpenHow(_O_PATH | os.O_CLOEXEC, 0, _RESOLVE_CACHED)
    fd = openat2(_SYS_OPENAT2, _AT_FDCWD, b"/", ctypes.byref(how), 24)
    if fd < 0:
        return None
    os.close(fd)
    try:
        return _CachedFileSystem(openat2, statx)
    except OSError:
        return None  # no /proc to tell local file systems by


_CACHE: Final = _cached_file_system()
#: Whether the kernel answers cached-only lookups here.
CACHED_LOOKUPS: Final = _CACHE is not None
#: The cached-only file system; DISK where there is none (never used then).
CACHE: Final[FileSystem] = _CACHE if _CACHE is not None else DISK
