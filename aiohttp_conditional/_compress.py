"""``python -m aiohttp_conditional compress DIR``: write the variants the server sends.

Beside each file worth compressing it writes ``.br``, ``.zst`` and ``.gz`` at the
codings' highest levels (this is done once, not per request), keeps a variant only
where it is smaller enough to matter, and gives it the file's timestamps: the
server takes a variant only if it is no older than its file, so a file changed
after its variants was written is never answered with them.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from stat import S_ISREG
from typing import Any, Final, NamedTuple

from ._cli import prog_name
from ._encoding import DEFAULT_ORDER, SUFFIXES
from ._platform import NOFOLLOW, OPEN_FLAGS
from ._response import content_type_of

__all__ = ("main",)

INSTALL: Final = "pip install 'aiohttp-conditional[compress]'"
# What is worth compressing, by media type, as WhiteNoise and Caddy choose: text and
# the text-like formats; not images, audio, video, archives or fonts that are
# compressed already (woff, woff2).
_COMPRESSIBLE: Final = frozenset(
    {
        "application/atom+xml",
        "application/geo+json",
        "application/javascript",
        "application/json",
        "application/ld+json",
        "application/manifest+json",
        "application/rss+xml",
        "application/vnd.ms-fontobject",
        "application/wasm",
        "application/x-javascript",
        "application/xhtml+xml",
        "application/xml",
        "font/otf",
        "font/ttf",
        "image/bmp",
        "image/svg+xml",
        "image/vnd.microsoft.icon",
        "image/x-icon",
    }
)
# Types Python's mimetypes does not know before 3.14 (fonts) or files it calls
# something else: by name.
_COMPRESSIBLE_SUFFIXES: Final = (".eot", ".map", ".otf", ".ttf", ".webmanifest")
# A variant is kept only if it is at most this share of the file: a few per cent
# saved is not worth a second representation.
_WORTH: Final = 0.95


class _Result(NamedTuple):
    """What became of one file: its size, and each coding's variant size or None."""

    path: str
    size: int
    written: dict[str, int | None]  # None: not worth keeping
    up_to_date: tuple[str, ...]
    problem: str | None = None  # why nothing was done: it changed, or an error


def _brotli() -> Callable[[bytes], bytes]:
    brotli: Any = importlib.import_module("brotli")
    return lambda data: bytes(brotli.compress(data, quality=11))


def _zstd() -> Callable[[bytes], bytes]:
    try:  # the standard library's, from Python 3.14
        zstd: Any = importlib.import_module("compression.zstd")
        return lambda data: bytes(zstd.compress(data, level=19))
    except ImportError:
        zstandard: Any = importlib.import_module("zstandard")
        compressor = zstandard.ZstdCompressor(level=19)
        return lambda data: bytes(compressor.compress(data))


def _gzip() -> Callable[[bytes], bytes]:
    # mtime=0: the same file gives the same variant, byte for byte.
    return lambda data: gzip.compress(data, compresslevel=9, mtime=0)


_COMPRESSORS: Final = {"br": _brotli, "zstd": _zstd, "gzip": _gzip}
_PACKAGES: Final = {"br": "brotli", "zstd": "zstandard"}


def _codings(value: str) -> tuple[str, ...]:
    codings = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [coding for coding in codings if coding not in SUFFIXES]
    if unknown or not codings:
        raise argparse.ArgumentTypeError(
            f"{value!r}: name codings among {', '.join(DEFAULT_ORDER)}"
        )
    return codings


def _size(value: str) -> int:
    try:
        size = int(value, 10)
    except ValueError:
        size = -1
    if size < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a size in bytes")
    return size


def main(argv: list[str]) -> int:
    """Compress a tree's files; return the exit status."""
    parser = argparse.ArgumentParser(
        prog=f"{prog_name()} compress",
        description="Write .br, .zst and .gz beside each file worth compressing, "
        "for the server to send to clients that accept them.",
    )
    parser.add_argument("directory", help="the tree the server serves")
    parser.add_argument(
        "--codings", type=_codings, default=DEFAULT_ORDER, metavar="LIST",
        help="which variants, e.g. br,gzip (default: br,zstd,gzip)",
    )  # fmt: skip
    parser.add_argument(
        "--min-size", type=_size, default=512, metavar="BYTES",
        help="leave smaller files alone (default: 512)",
    )  # fmt: skip
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
        help="processes compressing at once (default: one per core)",
    )  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary")
    args = parser.parse_args(argv)
    root = Path(args.directory)
    if not root.is_dir():
        parser.error(f"{root} is not a directory")
    missing = [_PACKAGES[coding] for coding in args.codings if not _available(coding)]
    if missing:
        parser.error(
            f"{' and '.join(missing)} not installed: {INSTALL} "
            f"(or --codings {','.join(c for c in args.codings if _available(c))})"
        )
    try:
        files = sorted(_worth_compressing(root, args.min_size))
        results = []
        with ProcessPoolExecutor(max(1, args.jobs)) as pool:
            done = pool.map(_compress, files, [args.codings] * len(files), chunksize=4)
            for result in _progress(done, len(files), quiet=args.quiet):
                results.append(result)
    except KeyboardInterrupt:
        print("interrupted: what was written is whole; run it again", file=sys.stderr)
        return 130
    failed = [r for r in results if r.problem not in (None, "changed while read")]
    for result in failed:
        print(f"{result.path}: {result.problem}", file=sys.stderr)
    if not args.quiet:
        print(_summary(results, args.codings))
    return 1 if failed else 0


def _available(coding: str) -> bool:
    try:
        _COMPRESSORS[coding]()
    except ImportError:
        return False
    return True


def _worth_compressing(root: Path, min_size: int) -> Iterator[str]:
    """Yield the files under ``root`` of a compressible type and at least min_size.

    Variants themselves, and names that start with a dot (which the server hides
    by default), are left alone; symlinks are not followed.
    """
    suffixes = tuple(SUFFIXES.values())
    for directory, names, files in os.walk(root):
        names[:] = [name for name in names if not name.startswith(".")]
        for name in files:
            if name.startswith(".") or name.endswith(suffixes):
                continue
            path = os.path.join(directory, name)
            content_type = content_type_of(path) or ""
            if not (
                content_type.startswith("text/")
                or content_type in _COMPRESSIBLE
                or name.lower().endswith(_COMPRESSIBLE_SUFFIXES)
            ):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if S_ISREG(st.st_mode) and st.st_size >= min_size:
                yield path


def _compress(path: str, codings: tuple[str, ...]) -> _Result:
    """Write what is missing or stale of one file's variants (in a worker process).

    A file that cannot be read or written for is reported, not fatal: the rest of
    the tree is still compressed.
    """
    try:
        return _compress_file(path, codings)
    except OSError as error:
        return _Result(path, 0, {}, (), f"{error.strerror or error}")


def _compress_file(path: str, codings: tuple[str, ...]) -> _Result:
    st = os.lstat(path)
    if not S_ISREG(st.st_mode):
        return _Result(path, 0, {}, (), "no longer a file")
    up_to_date = tuple(
        coding for coding in codings if _is_current(path + SUFFIXES[coding], st)
    )
    written: dict[str, int | None] = {}
    todo = [coding for coding in codings if coding not in up_to_date]
    if not todo:
        return _Result(path, st.st_size, written, up_to_date)
    # O_NOFOLLOW: a symlink put in its place since the walk is not read through.
    flags = OPEN_FLAGS | NOFOLLOW
    with open(os.open(path, flags), "rb") as file:
        data = file.read()
        if _changed(os.fstat(file.fileno()), st):
            return _Result(path, st.st_size, written, (), "changed while read")
    for coding in todo:
        variant = path + SUFFIXES[coding]
        squeezed = _COMPRESSORS[coding]()(data)
        if len(squeezed) > _WORTH * len(data):
            written[coding] = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(variant)  # a stale one would only be skipped
            continue
        _write(variant, squeezed, st)
        written[coding] = len(squeezed)
    return _Result(path, st.st_size, written, up_to_date)


def _is_current(variant: str, st: os.stat_result) -> bool:
    """Tell whether a variant was written for this version of its file, as the
    server tells it: the file's mtime, and no change of the file after it."""
    try:
        vst = os.lstat(variant)
    except OSError:
        return False
    return (
        S_ISREG(vst.st_mode)
        and vst.st_mtime_ns == st.st_mtime_ns
        and vst.st_ctime_ns >= max(st.st_mtime_ns, st.st_ctime_ns)
    )


def _changed(now: os.stat_result, before: os.stat_result) -> bool:
    return (now.st_ino, now.st_size, now.st_mtime_ns, now.st_ctime_ns) != (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    )


def _write(variant: str, data: bytes, st: os.stat_result) -> None:
    """Write a variant whole or not at all, with its file's timestamps."""
    # A short name: the variant's own may be as long as a name can be.
    descriptor, temporary = tempfile.mkstemp(prefix=".", dir=os.path.dirname(variant))
    try:
        with open(descriptor, "wb") as file:
            file.write(data)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # Run as root for a site served as another user: the variant must be
            # as readable to that user as its file, or a client gets 403 for it.
            os.chown(temporary, st.st_uid, st.st_gid)
        os.chmod(temporary, st.st_mode & 0o777)
        os.utime(temporary, ns=(st.st_atime_ns, st.st_mtime_ns))
        # The rename sets the variant's ctime now: after every change of its file.
        os.replace(temporary, variant)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _progress(
    results: Iterator[_Result], total: int, *, quiet: bool
) -> Iterator[_Result]:
    """Show a progress bar on a terminal (tqdm, where installed), else nothing."""
    if quiet or not sys.stderr.isatty():
        return results
    try:
        tqdm: Any = importlib.import_module("tqdm").tqdm
    except ImportError:
        return results
    # A terminal that reports no size (a fresh pty) is taken as 80 by 24: tqdm
    # would show nothing on one with no rows.
    size = shutil.get_terminal_size()
    bar = tqdm(
        results,
        total=total,
        unit="file",
        file=sys.stderr,
        ncols=size.columns,
        nrows=size.lines,
    )
    return iter(bar)


def _summary(results: list[_Result], codings: tuple[str, ...]) -> str:
    written = sum(1 for result in results if any(result.written.values()))
    current = sum(
        1
        for result in results
        if result.problem is None and len(result.up_to_date) == len(codings)
    )
    worthless = sum(
        1
        for result in results
        if result.written and not any(result.written.values()) and not result.up_to_date
    )
    changed = sum(1 for result in results if result.problem == "changed while read")
    failed = sum(
        1
        for result in results
        if result.problem is not None and result.problem != "changed while read"
    )
    counts = f"{written} compressed, {current} up to date, {worthless} not worth it"
    if changed:
        counts += f", {changed} changing (left for the next run)"
    if failed:
        counts += f", {failed} failed"
    lines = [f"{len(results)} files worth compressing: {counts}"]
    for coding in codings:
        fresh = [r for r in results if r.written.get(coding) is not None]
        before = sum(result.size for result in fresh)
        after = sum(r.written[coding] or 0 for r in fresh)
        skipped = sum(
            1 for r in results if coding in r.written and not r.written[coding]
        )
        share = f" ({after / before:.0%})" if before else ""
        lines.append(
            f"  {coding:5} {len(fresh)} written, {_bytes(before)} -> {_bytes(after)}"
            f"{share}; {skipped} not worth it"
        )
    return "\n".join(lines)


def _bytes(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"
