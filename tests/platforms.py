"""Other platforms, SIMULATED on Linux: their ``os`` as CPython has it there.

No Windows or macOS machine is at hand, so a server runs in a subprocess whose
``os`` behaves as CPython's does on the platform named, set up before the library
is imported (``sys.platform`` is changed for that import only, as the library
reads it then):

- ``windows``: no ``pread``, ``preadv``, ``sendfile``, ``O_NONBLOCK``,
  ``O_NOFOLLOW``, ``O_CLOEXEC``, ``register_at_fork`` or ``geteuid``; an
  ``O_BINARY`` flag without which a file opens in text mode (here: fails);
  ``os.access(..., follow_symlinks=False)`` raises NotImplementedError;
  ``st_ctime`` is the creation time (the kernel's birth time, from statx); a
  symlink to a directory is a junction (an lstat says directory, with
  ``st_reparse_tag``; ``DirEntry.is_junction`` only from Python 3.12); and names
  are looked up as Win32 does below the served root: case-insensitively, trailing
  dots and spaces dropped, ``::$DATA`` the file, device names anywhere, 8.3 short
  names for long ones (``~1`` only).  ``realpath`` gives the names on disk, as
  Windows's does.  Not simulated: ``\\`` as the separator and
  drive letters, which Linux paths cannot carry (the rules for them are tested
  as plain functions).
- ``macos``: names looked up case- and normalization-insensitively below the root,
  as APFS does by default; no openat2, epoll or ``RWF_NOWAIT``.
- ``musl``: not simulated in Python but by the kernel: a seccomp filter answers
  ``faccessat2`` with EINVAL, which is what musl's ``faccessat`` answers on a kernel
  older than 5.8 where a symlink must not be followed.

Run as ``python -m tests.platforms PLATFORM ROOT``: it serves ROOT/site on a free
port and prints the port; with more arguments, it runs the command line with them.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import os
import platform
import runpy
import stat
import struct
import sys
import unicodedata
from typing import Any

PLATFORMS = ("windows", "macos", "musl")

# Device names Win32 opens in every directory, whatever the extension.
_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789"}
)
_O_BINARY = 1 << 29  # a bit Linux gives no meaning to
_STATX_BTIME = 0x800
_AT_EMPTY_PATH = 0x1000
_AT_SYMLINK_NOFOLLOW = 0x100
_JUNCTION = 0xA0000003


def short_name(name: str) -> str | None:
    """Return the 8.3 short name Windows would make for ``name``, or None."""
    base, dot, extension = name.lstrip(".").rpartition(".")
    if not dot:
        base, extension = extension, ""
    fits = len(base) <= 8 and len(extension) <= 3 and "." not in base
    if fits and name == name.upper() and not name.startswith(".") and " " not in name:
        return None  # already an 8.3 name
    keep = "".join(c for c in base.upper() if c.isalnum() or c in "_-")
    short = f"{keep[:6]}~1"
    return f"{short}.{extension[:3].upper()}" if extension else short


class _Birth:
    """The creation time of a file, from statx(2): Windows's ``st_ctime``."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._buffer = ctypes.create_string_buffer(256)

    def of(self, path: str | None, fd: int = -100, *, follow: bool = True) -> int:
        name = b"" if path is None else os.fsencode(path)
        flags = (
            _AT_EMPTY_PATH if path is None else (0 if follow else _AT_SYMLINK_NOFOLLOW)
        )
        if self._libc.statx(fd, name, flags, _STATX_BTIME, self._buffer):
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        (mask,) = struct.unpack_from("I", self._buffer, 0)
        if not mask & _STATX_BTIME:
            raise OSError(errno.ENOTSUP, "no birth time on this file system", path)
        seconds, nanoseconds = struct.unpack_from("qI", self._buffer, 0x50)
        return int(seconds * 1_000_000_000 + nanoseconds)


def _with_ctime(st: os.stat_result, ctime_ns: int) -> os.stat_result:
    fields = list(st[:10])
    fields[9] = ctime_ns // 1_000_000_000
    extra = {
        name: getattr(st, name)
        for name in (
            "st_atime",
            "st_mtime",
            "st_atime_ns",
            "st_mtime_ns",
            "st_blksize",
            "st_blocks",
            "st_rdev",
        )
    }
    extra["st_ctime"] = ctime_ns / 1e9
    extra["st_ctime_ns"] = ctime_ns
    return os.stat_result(fields, extra)


class _Junction:
    """An lstat of a directory junction, as Windows's os.lstat gives one."""

    def __init__(self, st: os.stat_result) -> None:
        self._st = st
        self.st_mode = stat.S_IFDIR | 0o755
        self.st_reparse_tag = _JUNCTION

    def __getattr__(self, name: str) -> Any:
        return getattr(self._st, name)


class _Names:
    """Look names up below ``root`` as a file system that folds them does."""

    def __init__(self, root: str, *, windows: bool) -> None:
        self.root = root
        self.windows = windows
        self.lstat = os.lstat
        self.listdir = os.listdir

    def _same(self, entry: str, name: str) -> bool:
        def folded(text: str) -> str:
            # APFS takes either Unicode form of a name too; NTFS only folds case.
            if not self.windows:
                text = unicodedata.normalize("NFD", text)
            return text.casefold()

        if folded(entry) == folded(name):
            return True
        return self.windows and short_name(entry) == name.upper()

    def translate(self, path: Any) -> Any:
        if not isinstance(path, str) or not path.startswith(self.root + "/"):
            return path
        current = self.root
        for part in path[len(self.root) + 1 :].split("/"):
            if part in ("", ".", ".."):
                current = f"{current}/{part}" if part else current
                continue
            if self.windows:
                part = self._win32(part)
                if part == "\x00device":
                    return os.devnull
            try:
                self.lstat(f"{current}/{part}")
            except FileNotFoundError:
                try:
                    entries = self.listdir(current)
                except OSError:
                    entries = []
                part = next((e for e in entries if self._same(e, part)), part)
            except OSError:
                pass
            current = f"{current}/{part}"
        return current

    def _win32(self, part: str) -> str:
        name, colon, stream = part.partition(":")
        if colon:
            if stream.upper() != ":$DATA":
                raise OSError(
                    errno.EINVAL, "simulated Windows: a stream or a drive", part
                )
            part = name
        stripped = part.rstrip(". ")
        if not stripped:
            raise OSError(errno.EINVAL, "simulated Windows: an invalid name", part)
        if stripped.split(".", 1)[0].rstrip(" ").upper() in _DEVICES:
            return "\x00device"
        return stripped


def _windows(root: str) -> None:
    names = _Names(root, windows=True)
    birth = _Birth()
    real = {
        name: getattr(os, name) for name in ("stat", "lstat", "fstat", "open", "access")
    }
    real_scandir = os.scandir
    path_only = os.O_PATH | os.O_CLOEXEC

    def under(path: Any) -> bool:
        return isinstance(path, str) and path.startswith(root + "/")

    def stat_(path: Any, *args: Any, **kwargs: Any) -> Any:
        translated = names.translate(os.fspath(path))
        st = real["stat"](translated, *args, **kwargs)
        if under(translated) and stat.S_ISREG(st.st_mode) | stat.S_ISDIR(st.st_mode):
            return _with_ctime(st, birth.of(translated))
        return st

    def lstat_(path: Any, *args: Any, **kwargs: Any) -> Any:
        translated = names.translate(os.fspath(path))
        st = real["lstat"](translated, *args, **kwargs)
        if not under(translated):
            return st
        st = _with_ctime(st, birth.of(translated, follow=False))
        if stat.S_ISLNK(st.st_mode):
            try:
                target = real["stat"](translated)
            except OSError:
                return st
            if stat.S_ISDIR(target.st_mode):
                return _Junction(st)
        return st

    def fstat_(fd: int) -> os.stat_result:
        st: os.stat_result = real["fstat"](fd)
        if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            try:
                return _with_ctime(st, birth.of(None, fd))
            except OSError:
                return st
        return st

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        translated = names.translate(os.fspath(path))
        # Reads only: the standard library's own writes (tempfile) chose their flags
        # before the simulation began, where Windows would have given them O_BINARY.
        reading = flags & os.O_ACCMODE == os.O_RDONLY
        if under(translated) and reading and not flags & _O_BINARY:
            raise OSError(
                errno.EINVAL, "simulated Windows: opened without O_BINARY, in text mode"
            )
        return int(real["open"](translated, flags & ~_O_BINARY, *args, **kwargs))

    def access_(
        path: Any, mode: int, *, follow_symlinks: bool = True, **kwargs: Any
    ) -> bool:
        if not follow_symlinks:
            raise NotImplementedError(
                "access: follow_symlinks unavailable on this platform"
            )
        return bool(real["access"](names.translate(os.fspath(path)), mode, **kwargs))

    def realpath_(path: Any, *args: Any, **kwargs: Any) -> Any:
        # Windows's realpath gives the final path of a file, its names as on disk,
        # through junctions and symlinks: as the kernel knows an open file's.
        translated = names.translate(os.fspath(path))
        try:
            fd = real["open"](translated, path_only)
        except OSError:
            head, tail = os.path.split(translated)
            if not tail or head == translated:
                return translated
            return os.path.join(realpath_(head), tail)
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)

    class Entry:
        """A DirEntry as Windows gives one for a junction: not a symlink."""

        def __init__(self, entry: os.DirEntry[str]) -> None:
            self._entry = entry
            # NTFS names are UTF-16, which may hold a lone surrogate: here a file
            # whose name is that surrogate in UTF-8's way (WTF-8) stands for one.
            try:
                self.name = os.fsencode(entry.name).decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                self.name = entry.name
            self.path = entry.path

        def is_symlink(self) -> bool:
            return self._entry.is_symlink() and not self._entry.is_dir()

        if sys.version_info >= (3, 12):  # as in CPython: not before

            def is_junction(self) -> bool:
                return self._entry.is_symlink() and self._entry.is_dir()

        def stat(self, *, follow_symlinks: bool = True) -> Any:
            if follow_symlinks:
                return stat_(self._entry.path)
            return lstat_(self._entry.path)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._entry, name)

    class Entries:
        def __init__(self, path: Any) -> None:
            self._found = real_scandir(path)

        def __enter__(self) -> Entries:
            return self

        def __exit__(self, *exc_info: object) -> None:
            self._found.close()

        def __iter__(self) -> Entries:
            return self

        def __next__(self) -> Entry:
            return Entry(next(self._found))

        def close(self) -> None:
            self._found.close()

    for name in (
        "pread",
        "pwrite",
        "preadv",
        "pwritev",
        "sendfile",
        "O_NONBLOCK",
        "O_NOFOLLOW",
        "O_CLOEXEC",
        "O_PATH",
        "RWF_NOWAIT",
        "register_at_fork",
        "geteuid",
    ):
        if hasattr(os, name):
            delattr(os, name)
    simulated = {
        "O_BINARY": _O_BINARY,
        "stat": stat_,
        "lstat": lstat_,
        "fstat": fstat_,
        "open": open_,
        "access": access_,
        "scandir": Entries,
    }
    for name, value in simulated.items():
        setattr(os, name, value)
    os.path.realpath = realpath_  # type: ignore[assignment]


def _macos(root: str) -> None:
    names = _Names(root, windows=False)
    for name in ("stat", "lstat", "open", "access", "readlink", "listdir", "scandir"):
        function = getattr(os, name)

        def translated(
            path: Any, *args: Any, _function: Any = function, **kwargs: Any
        ) -> Any:
            if isinstance(path, (str, os.PathLike)):
                path = names.translate(os.fspath(path))
            return _function(path, *args, **kwargs)

        setattr(os, name, translated)
    for name in ("O_PATH", "RWF_NOWAIT"):
        if hasattr(os, name):
            delattr(os, name)


def _musl() -> None:
    """Make the kernel answer faccessat2 with EINVAL in this process, as musl would."""
    arch = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[platform.machine()]

    class Filter(ctypes.Structure):
        _fields_ = (
            ("code", ctypes.c_ushort),
            ("jt", ctypes.c_ubyte),
            ("jf", ctypes.c_ubyte),
            ("k", ctypes.c_uint),
        )

    class Program(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter)))

    load, jump_if_equal, give = 0x20, 0x15, 0x06
    allow, fail = 0x7FFF0000, 0x00050000 | errno.EINVAL
    instructions = (
        (load, 0, 0, 4),  # the architecture
        (jump_if_equal, 0, 3, arch),
        (load, 0, 0, 0),  # the system call's number
        (jump_if_equal, 0, 1, 439),  # faccessat2
        (give, 0, 0, fail),
        (give, 0, 0, allow),
    )
    program = (Filter * len(instructions))(*(Filter(*i) for i in instructions))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(
        22, 2, ctypes.byref(Program(len(instructions), program))
    ):
        raise OSError(ctypes.get_errno(), "seccomp")
    if os.access(__file__, os.F_OK, follow_symlinks=False):
        raise RuntimeError("the filter did not take: access still answers")


def simulate(name: str, root: str) -> Any:
    """Make this process's ``os`` the platform's, then import the library anew."""
    import aiohttp.web  # noqa: F401  # before the change: it is not under test

    if name == "musl":
        _musl()
        return importlib.import_module("aiohttp_conditional")
    {"windows": _windows, "macos": _macos}[name](root)
    real_platform = sys.platform
    sys.platform = {"windows": "win32", "macos": "darwin"}[name]
    try:
        return importlib.import_module("aiohttp_conditional")
    finally:
        sys.platform = real_platform


def main() -> None:
    name, root = sys.argv[1], os.path.realpath(sys.argv[2])
    library = simulate(name, root)
    if len(sys.argv) > 3:
        # The command line, with the arguments that follow.
        sys.argv = ["aiohttp_conditional", *sys.argv[3:]]
        runpy.run_module("aiohttp_conditional", run_name="__main__", alter_sys=True)
        return
    from aiohttp import web

    site = f"{root}/site"

    async def plain(request: web.Request) -> web.StreamResponse:
        path = f"{site}/{request.match_info['name']}"
        response: web.StreamResponse = library.ConditionalFileResponse(path)
        return response

    async def content(request: web.Request) -> web.StreamResponse:
        path = f"{site}/{request.match_info['name']}"
        response: web.StreamResponse = library.ConditionalFileResponse(
            path, etag="content"
        )
        return response

    app = web.Application()
    app.router.add_get("/file/{name}", plain)
    app.router.add_get("/content/{name}", content)
    library.add_static(app, "/static", site, show_index=True, index="index.html")
    library.add_static(app, "/followed", site, follow_symlinks=True)
    # Every request in an executor job, through the plain calls: where a C library
    # has no statx (musl before 1.2.5) there is no other way.
    library.add_static(app, "/jobs", site, use_executor=True)

    import asyncio

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
