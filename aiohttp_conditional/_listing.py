"""The HTML index of a directory: its entries, their sizes and times, escaped."""

from __future__ import annotations

import datetime
import html
import os
import urllib.parse
from collections.abc import Callable
from stat import S_ISDIR
from typing import Final, NamedTuple

from yarl import URL

from ._platform import entry_is_link

__all__ = ("listing", "quote_path")

_UNITS: Final = ("KiB", "MiB", "GiB", "TiB", "PiB")
# Unicode's bidirectional formatting characters (UAX #9): marks, embeddings,
# overrides and isolates.
_REORDERING: Final = dict.fromkeys(
    (0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)), "\ufffd"
)
_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;margin:2em}"
    "table{border-collapse:collapse}"
    "th,td{padding:.2em 1.5em .2em 0;text-align:left}"
    "td.size{text-align:right;font-variant-numeric:tabular-nums}"
)


class _Entry(NamedTuple):
    name: str
    is_dir: bool
    st: os.stat_result | None  # None: a broken or looping symlink


def listing(
    path: str,
    prefix: str,
    relative: str,
    hide: Callable[[str], bool],
    reaches: Callable[[str], bool],
) -> str:
    """Return the HTML index of the directory ``path``, shown under a route.

    ``prefix`` is the route's (encoded, without a trailing slash) and ``relative``
    the decoded path inside it, without slashes at its ends; the title and every
    link follow them, never the path on disk.  Directories come first; each entry
    shows its size and modification time (of what a symlink leads to), as nginx's
    autoindex and Caddy's browse show them.  ``hide`` tells, of a name, whether to
    leave it out; ``reaches``, of the path of a symlink, whether the route would
    follow it: what a link the route does not follow leads to is not shown.
    """
    entries = []
    with os.scandir(path) as found:
        for item in found:
            if hide(item.name):
                continue
            st: os.stat_result | None = None
            try:
                if not entry_is_link(item) or reaches(item.path):
                    st = item.stat()
            except OSError:
                pass
            is_dir = st is not None and S_ISDIR(st.st_mode)
            entries.append(_Entry(item.name, is_dir, st))
    entries.sort(key=lambda entry: (not entry.is_dir, entry.name))
    base = f"{prefix}/{relative}" if relative else prefix
    shown = urllib.parse.unquote(prefix) + (f"/{relative}/" if relative else "/")
    title = f"Index of {html.escape(_printable(shown))}"
    rows = []
    if relative:
        above = relative.rpartition("/")[0]
        rows.append(_row(f"{prefix}/{above}/" if above else f"{prefix}/", "../", None))
    for entry in entries:
        name = f"{entry.name}/" if entry.is_dir else entry.name
        rows.append(_row(f"{base}/{entry.name}", name, entry))
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n<table>\n"
        "<thead><tr><th>Name</th><th>Size</th><th>Modified</th></tr></thead>\n"
        f"<tbody>\n{chr(10).join(rows)}\n</tbody>\n</table>\n</body>\n</html>\n"
    )


def _row(url_path: str, name: str, entry: _Entry | None) -> str:
    # Escaped as well as quoted: a name with "&lt." would otherwise link elsewhere.
    href = html.escape(_href(url_path))
    link = f'<a href="{href}">{html.escape(_printable(name))}</a>'
    size = modified = ""
    if entry is not None and entry.st is not None:
        size = "-" if entry.is_dir else _size(entry.st.st_size)
        modified = _modified(entry.st.st_mtime_ns)
    return f'<tr><td>{link}</td><td class="size">{size}</td><td>{modified}</td></tr>'


def _size(size: int) -> str:
    """Show a size as people read it, the exact bytes on hover."""
    shown = f"{size} B"
    scaled = float(size)
    for unit in _UNITS:
        # Rounded as shown: 1048575 bytes is "1.0 MiB", not "1024.0 KiB".
        if round(scaled, 1) < 1024:
            break
        scaled /= 1024
        shown = f"{scaled:.1f} {unit}"
    return f'<span title="{size} byte{"" if size == 1 else "s"}">{shown}</span>'


def _modified(mtime_ns: int) -> str:
    """Show a modification time in UTC, to the minute; to the second on hover."""
    try:
        when = datetime.datetime.fromtimestamp(
            mtime_ns // 1_000_000_000, datetime.timezone.utc
        )
    except (OverflowError, OSError, ValueError):
        return ""  # a time no calendar here can show
    return f'<time datetime="{when:%Y-%m-%dT%H:%M:%SZ}">{when:%Y-%m-%d %H:%M}</time>'


def _printable(name: str) -> str:
    """Show a file name as text that cannot pass for another name.

    Bytes that are not UTF-8, and the controls that reorder text (RLO makes
    ``txt.exe`` show as ``exe.txt``), are shown as U+FFFD.
    """
    return _encoded(name).decode("utf-8", "replace").translate(_REORDERING)


def _href(url_path: str) -> str:
    """Quote a URL path as upstream's listing does; bytes that are not UTF-8 as %XX."""
    try:
        url_path.encode("utf-8")
    except UnicodeEncodeError:
        return quote_path(url_path)
    return URL.build(path=url_path, encoded=False).raw_path


def quote_path(path: str) -> str:
    """Percent-encode a decoded path, its file system bytes as they are."""
    return urllib.parse.quote(_encoded(path), safe="/!$&'()*+,;=:@")


def _encoded(name: str) -> bytes:
    """Return a name as bytes: what POSIX stores, or Windows's UTF-16 in UTF-8.

    A Windows name may hold a lone surrogate, which no strict encoding takes and
    which is not a byte the file system decoder escaped: it is kept as WTF-8.
    """
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogatepass")
