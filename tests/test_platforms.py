"""Windows, macOS and musl: SIMULATED here (see tests/platforms.py), and for real
what Linux can show of them (a file system that folds case, the rules as functions).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from aiohttp_conditional import add_static
from aiohttp_conditional._names import refused_on_windows
from aiohttp_conditional._preconditions import (
    Conditions,
    FileResponseState,
    evaluate_preconditions,
    format_http_date,
    make_validators,
)
from tests.conftest import Client, raw_request
from tests.platforms import PLATFORMS, short_name
from tests.test_static import SECRET, TRAVERSALS

_REPOSITORY = Path(__file__).resolve().parent.parent
# Bytes a text-mode read would change: CRLF, and ^Z, which ends a text file.
_BINARY = b"line\r\nnext\x1aafter\r\n" * 6000
_NFD = "cafe\u0301.txt"
# A lone surrogate in UTF-8's way (WTF-8): simulated Windows lists it as "\ud800".
_LONE = os.fsdecode(b"lone-\xed\xa0\x80.txt")


class Server(NamedTuple):
    platform: str
    url: str
    root: Path


def _tree(root: Path) -> None:
    site = root / "site"
    (site / "sub").mkdir(parents=True)
    (root / "outside").mkdir()
    (root / "outside" / "secret.txt").write_bytes(SECRET)
    (root / "secret.txt").write_bytes(SECRET)
    (site / "index.html").write_text("<h1>home</h1>\n")
    (site / "sub" / "page.txt").write_text("a page\n")
    (site / ".env").write_text("PASSWORD=hunter2\n")
    (site / ".git").mkdir()
    (site / ".git" / "config").write_text("[core]\n")
    (site / "big.bin").write_bytes(_BINARY)
    (site / "app.js").write_text("console.log('app');\n" * 20)
    (site / "only.js.gz").write_bytes(b"\x1f\x8b not checked")
    (site / _NFD).write_text("accented\n")
    (site / "roll.txt").write_text("version 1\n")
    (site / "jn").symlink_to(root / "outside")  # a junction, on simulated Windows
    (site / "sub" / "out").symlink_to(root / "outside")
    (site / "Kit.txt").write_text("a kit\n")
    (site / "older.txt").write_text("first\n")
    (site / "rolled.js").write_text("version 1;" * 20)
    (site / "inlink").symlink_to(site / "sub")
    (site / "sub" / _LONE).write_text("lone\n")
    # gzip -k gives the variant its file's mtime, as every such tool does.
    subprocess.run(["gzip", "-k", str(site / "app.js")], check=True)


@pytest.fixture(scope="module", params=PLATFORMS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    name = request.param
    root = tmp_path_factory.mktemp(name)
    _tree(root)
    # The server's errors go to a file: a pipe nobody reads would fill and stop it.
    log = tmp_path_factory.mktemp(f"{name}-log") / "stderr.txt"
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.platforms", name, str(root)],
            cwd=_REPOSITORY,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        process.kill()
        process.communicate()
        pytest.fail(f"the simulated {name} server did not start: {log.read_text()}")
    time.sleep(2.1)  # until every file is stable, and gets validators
    try:
        yield Server(name, f"http://127.0.0.1:{line.strip()}", root)
    finally:
        process.kill()
        process.communicate()


async def test_whole_request_path(server: Server) -> None:
    """A 200, HEAD, 304, 412, 206, multipart, variant, content tag, link, listing."""
    async with aiohttp.ClientSession(server.url, auto_decompress=False) as session:
        for route in ("/static", "/jobs"):
            async with session.get(f"{route}/big.bin") as resp:
                assert resp.status == 200
                assert await resp.read() == _BINARY  # no text-mode translation
                etag = resp.headers["ETag"]
            async with session.head(f"{route}/big.bin") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Length"] == str(len(_BINARY))
            async with session.get(
                f"{route}/big.bin", headers={"If-None-Match": etag}
            ) as resp:
                assert resp.status == 304
            async with session.get(
                f"{route}/big.bin", headers={"If-Match": '"other"'}
            ) as resp:
                assert resp.status == 412
            async with session.get(
                f"{route}/big.bin", headers={"Range": "bytes=4-9"}
            ) as resp:
                assert resp.status == 206
                assert await resp.read() == _BINARY[4:10]
            async with session.get(
                f"{route}/big.bin", headers={"Range": "bytes=0-5,90000-90009"}
            ) as resp:
                assert resp.status == 206
                body = await resp.read()
                assert _BINARY[:6] in body and _BINARY[90000:90010] in body
            async with session.get(
                f"{route}/app.js", headers={"Accept-Encoding": "gzip"}
            ) as resp:
                assert resp.status == 200
                assert resp.headers.get("Content-Encoding") == "gzip"
                assert resp.headers["Vary"] == "Accept-Encoding"
            async with session.get(f"{route}/inlink/page.txt") as resp:
                assert resp.status == 200
                assert await resp.text() == "a page\n"
        async with session.get("/file/big.bin", headers={"Range": "bytes=-4"}) as resp:
            assert resp.status == 206
            assert await resp.read() == _BINARY[-4:]
        async with session.get("/content/index.html") as resp:
            assert resp.status == 200
            tag = resp.headers["ETag"]
            assert "-" not in tag.strip('"')[:3]  # a hash, not "mtime-size"
        async with session.get(
            "/content/index.html", headers={"If-None-Match": tag}
        ) as resp:
            assert resp.status == 304
        async with session.get("/static/") as resp:
            assert resp.status == 200
            assert "<h1>home</h1>" in await resp.text()
        async with session.get("/static/sub/") as resp:
            assert resp.status == 200
            assert "page.txt" in await resp.text()


async def test_a_listing_shows_every_name(server: Server) -> None:
    """A name Windows may hold, a lone surrogate, is listed, not a 404 for all."""
    async with (
        aiohttp.ClientSession(server.url) as session,
        session.get("/static/sub/") as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    assert "page.txt" in text
    assert "lone-" in text
    # A junction out of the root is listed without what it leads to (its time).
    row = next(line for line in text.splitlines() if 'href="/static/sub/out"' in line)
    assert "<time" not in row


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_nothing_outside_the_root_is_ever_served(
    server: Server, path: str
) -> None:
    """The static route's traversal table, on each simulated platform."""
    for route in ("/static", "/followed"):
        port = int(server.url.rpartition(":")[2])
        status, body = await raw_request(port, f"{route}/{path}")
        assert status in (400, 403, 404)
        assert SECRET not in body


@pytest.mark.parametrize(
    "path",
    [
        "/static/ENV~1",  # the short name of .env
        "/static/GIT~1/config",  # .git/config
        "/static/index.html.",  # Win32 drops trailing dots
        "/static/index.html%20",  # and spaces
        "/static/index.html::$DATA",  # the file's data stream
        "/static/index.html:$DATA",
        "/static/NUL",  # a device, in every directory
        "/static/sub/con.txt",
        "/static/COM1",
        "/static/jn/secret.txt",  # a junction out of the root
        "/followed/jn/D:/secret.txt",  # another drive
        "/static/INDEX.HTML",  # another case
        "/static/Sub/page.txt",
        "/static/inlink/PAGE.TXT",  # another case, below a link
        "/static/ONLY.JS",  # a variant in another case
    ],
)
async def test_windows_vectors_are_not_found(server: Server, path: str) -> None:
    async with (
        aiohttp.ClientSession(server.url) as session,
        session.get(path, headers={"Accept-Encoding": "gzip"}) as resp,
    ):
        assert resp.status == 404, await resp.text()


async def test_names_as_the_directory_spells_them(server: Server) -> None:
    async with aiohttp.ClientSession(server.url, auto_decompress=False) as session:
        async with session.get(
            "/static/only.js", headers={"Accept-Encoding": "gzip"}
        ) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Encoding"] == "gzip"
        async with session.get("/static/caf%C3%A9.txt") as resp:
            # macOS takes either Unicode form for a name; Linux and NTFS do not.
            assert resp.status == (200 if server.platform == "macos" else 404)


async def test_a_rollback_in_place_gets_200_for_a_later_date(server: Server) -> None:
    """On Windows an in-place write leaves ctime, the creation time, alone."""
    roll = server.root / "site" / "roll.txt"
    roll.write_text("version 2\n")  # the same size, later
    time.sleep(2.1)
    async with aiohttp.ClientSession(server.url) as session:
        async with session.get("/static/roll.txt") as resp:
            assert await resp.text() == "version 2\n"
            held = _held_date(server, resp)
            etag = resp.headers["ETag"]
        # Rolled back in place, to the same size and an older mtime.
        inode = roll.stat().st_ino
        with roll.open("r+") as file:
            file.write("version 1\n")
        day_ago = time.time_ns() - 86400 * 1_000_000_000
        os.utime(roll, ns=(day_ago, day_ago))
        assert roll.stat().st_ino == inode
        time.sleep(2.1)
        async with session.get(
            "/static/roll.txt", headers={"If-Modified-Since": held}
        ) as resp:
            assert resp.status == 200
            assert await resp.text() == "version 1\n"
        async with session.get(
            "/static/roll.txt",
            headers={"If-Unmodified-Since": held, "Range": "bytes=0-3"},
        ) as resp:
            assert resp.status == 412  # no part of the new bytes for the old
        async with session.get(
            "/static/roll.txt", headers={"If-None-Match": etag}
        ) as resp:
            assert resp.status == 200
    if server.platform == "windows":
        assert etag.endswith(f'-{inode:x}"')  # which file, where ctime cannot tell


async def test_a_file_renamed_into_place_with_the_same_mtime(server: Server) -> None:
    """As npm leaves every file with one fixed time: another file, the same dates."""
    site = server.root / "site"
    fixed = 499_162_500_000_000_000  # 1985-10-26, npm's
    (site / "vendor.js").write_text("release 1;")
    os.utime(site / "vendor.js", ns=(fixed, fixed))
    time.sleep(2.1)
    async with aiohttp.ClientSession(server.url) as session:
        async with session.get("/static/vendor.js") as resp:
            held, etag = _held_date(server, resp), resp.headers["ETag"]
        (site / "vendor.new").write_text("release 2;")  # the same size
        os.utime(site / "vendor.new", ns=(fixed, fixed))
        os.replace(site / "vendor.new", site / "vendor.js")
        time.sleep(2.1)
        for headers in ({"If-None-Match": etag}, {"If-Modified-Since": held}):
            async with session.get("/static/vendor.js", headers=headers) as resp:
                assert resp.status == 200, headers
                assert await resp.text() == "release 2;"


def _held_date(server: Server, resp: aiohttp.ClientResponse) -> str:
    """Return the date a cache would revalidate with: Last-Modified, else Date.

    On Windows there is none beside an entity-tag: a date cannot tell a file
    from another made in the same second.
    """
    if server.platform == "windows":
        assert "Last-Modified" not in resp.headers
        return resp.headers["Date"]
    return resp.headers["Last-Modified"]


def _simulated(server: Server) -> list[str]:
    """Return the command that runs the library on the server's simulated platform."""
    return [sys.executable, "-m", "tests.platforms", server.platform, str(server.root)]


def test_the_command_line(server: Server) -> None:
    """Serve a directory and compress it, as a user would on that platform."""
    site = server.root / "site"
    packed = site / "packed"
    packed.mkdir()
    (packed / "notes.txt").write_text("words to compress " * 1000)
    command = _simulated(server)
    compressed = subprocess.run(
        [*command, "compress", str(packed), "--quiet"],
        cwd=_REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compressed.returncode == 0, compressed.stderr
    assert (packed / "notes.txt.gz").exists()
    process = subprocess.Popen(
        [*command, str(site), "-p", "0", "-b", "127.0.0.1", "-q"],
        cwd=_REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        match = re.fullmatch(r"Serving .* at (\S+) \(press Ctrl\+C to quit\)\n", line)
        assert match is not None, line
        url = match[1]
        for path, status in (("index.html", 200), (".env", 404), ("ENV~1", 404)):
            with contextlib.closing(urllib.request.urlopen(f"{url}{path}")) as resp:
                assert resp.status == status
    except urllib.error.HTTPError as error:
        assert error.code == 404
    finally:
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors


async def test_an_mtime_older_than_the_creation_time_still_counts(
    server: Server,
) -> None:
    """Copies keep a file's mtime and make it anew: mtime is before its ctime."""
    older = server.root / "site" / "older.txt"
    january = 1_704_067_200_000_000_000  # 2024-01-01
    os.utime(older, ns=(january, january))
    time.sleep(2.1)  # where utime moves ctime, until the file is stable again
    async with aiohttp.ClientSession(server.url) as session:
        async with session.get("/static/older.txt") as resp:
            etag = resp.headers["ETag"]
            held = _held_date(server, resp)
        with older.open("r+") as file:
            file.write("again\n")  # the same size, in place
        june = january + 152 * 86400 * 1_000_000_000
        os.utime(older, ns=(june, june))
        for headers in ({"If-None-Match": etag}, {"If-Modified-Since": held}):
            async with session.get("/static/older.txt", headers=headers) as resp:
                assert resp.status == 200, headers
                assert await resp.text() == "again\n"


async def test_a_newer_variant_is_not_sent_after_a_rollback_in_place(
    server: Server,
) -> None:
    site = server.root / "site"
    rolled = site / "rolled.js"
    january = 1_704_067_200_000_000_000
    os.utime(rolled, ns=(january, january))
    rolled.with_suffix(".js.gz").write_bytes(gzip.compress(b"version 2;" * 20))
    os.utime(rolled.with_suffix(".js.gz"), ns=(january, january))
    time.sleep(2.1)
    gzipped = {"Accept-Encoding": "gzip"}
    async with aiohttp.ClientSession(server.url) as session:
        async with session.get("/static/rolled.js", headers=gzipped) as resp:
            assert resp.headers.get("Content-Encoding") == "gzip"
        # Rolled back in place, to an older mtime; the variant is release 2's.
        with rolled.open("r+") as file:
            file.write("version 0;" * 20)
        december = january - 31 * 86400 * 1_000_000_000
        os.utime(rolled, ns=(december, december))
        time.sleep(2.1)
        async with session.get("/static/rolled.js", headers=gzipped) as resp:
            assert "Content-Encoding" not in resp.headers
            assert await resp.text() == "version 0;" * 20


async def test_a_name_that_normalizes_to_another_is_not_found(server: Server) -> None:
    """U+212A KELVIN SIGN is K in NFC: a rule about names would see neither."""
    async with aiohttp.ClientSession(server.url) as session:
        async with session.get("/static/Kit.txt") as resp:
            assert resp.status == 200
        async with session.get("/static/%E2%84%AAit.txt") as resp:
            assert resp.status == 404


def test_workers_are_for_linux(server: Server) -> None:
    if server.platform == "musl":
        pytest.skip("Linux: --workers is tested in test_main")
    command = _simulated(server)
    result = subprocess.run(
        [*command, str(server.root / "site"), "--workers", "2", "-p", "0"],
        cwd=_REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "only Linux spreads" in result.stderr


# --- a file system that folds case, for real: exFAT through FUSE -----------------------


@pytest.fixture
def exfat(tmp_path: Path) -> Iterator[Path]:
    """An exFAT file system, mounted for the test: names in any case open a file."""
    tools = ("mkfs.exfat", "mount.exfat-fuse", "losetup")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"needs root and {', '.join(tools)} (missing: {missing})")
    image = tmp_path / "exfat.img"
    with image.open("wb") as file:
        file.truncate(16 * 1024 * 1024)
    subprocess.run(["mkfs.exfat", str(image)], check=True, capture_output=True)
    device = subprocess.run(
        ["losetup", "-f", "--show", str(image)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    mounted = tmp_path / "exfat"
    mounted.mkdir()
    try:
        result = subprocess.run(
            ["mount.exfat-fuse", device, str(mounted)], capture_output=True, text=True
        )
        if result.returncode:
            pytest.skip(f"cannot mount exFAT here: {result.stderr.strip()}")
        try:
            yield mounted
        finally:
            subprocess.run(["umount", str(mounted)], check=False)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


async def test_a_case_folding_file_system(
    aiohttp_client: AiohttpClient, exfat: Path, listed: list[str]
) -> None:
    (exfat / "Secret.TXT").write_text("spelled so\n")
    (exfat / "Dir").mkdir()
    (exfat / "Dir" / "page.html").write_text("<p>page</p>\n")
    assert (exfat / "SECRET.txt").read_text() == "spelled so\n"  # it does fold
    app = web.Application()
    add_static(app, "/s", exfat)
    client = await aiohttp_client(app)
    answers = {
        "/s/Secret.TXT": 200,
        "/s/Dir/page.html": 200,
        "/s/secret.txt": 404,
        "/s/SECRET.TXT": 404,
        "/s/dir/page.html": 404,
        "/s/Dir/PAGE.HTML": 404,
    }
    assert await _statuses(client, answers) == answers
    # Directories changed in the last second are listed for each request; stable
    # ones once, whatever the requests.
    time.sleep(2.1)
    listed.clear()
    for _ in range(3):
        for path in ("/s/Secret.TXT", "/s/Dir/page.html", "/s/dir/PAGE.html"):
            async with client.get(path) as resp:
                await resp.read()
    assert sorted(listed) == [str(exfat), str(exfat / "Dir")]


async def test_a_case_folding_file_system_mounted_below_the_root(
    aiohttp_client: AiohttpClient, tmp_path: Path, exfat: Path
) -> None:
    """The root on ext4, a folder of it on exFAT: its names are checked too."""
    (exfat / "Secret.TXT").write_text("spelled so\n")
    (tmp_path / "top.txt").write_text("top\n")
    (tmp_path / "link").symlink_to(exfat)
    app = web.Application()
    add_static(app, "/s", tmp_path, follow_symlinks=True)
    client = await aiohttp_client(app)
    answers = {
        "/s/top.txt": 200,
        "/s/exfat/Secret.TXT": 200,
        "/s/exfat/SECRET.txt": 404,
        "/s/link/Secret.TXT": 200,
        "/s/link/secret.TXT": 404,
    }
    assert await _statuses(client, answers) == answers


async def _statuses(client: Client, paths: Iterable[str]) -> dict[str, int]:
    """Return the status of a GET of each path."""
    statuses = {}
    for path in paths:
        async with client.get(path) as resp:
            statuses[path] = resp.status
    return statuses


async def test_a_file_system_without_a_change_time(
    aiohttp_client: AiohttpClient, exfat: Path
) -> None:
    """exFAT keeps no ctime (its driver gives the mtime): Windows's policy there."""
    page = exfat / "app.js"
    page.write_text("version 2;" * 20)
    page.with_suffix(".js.gz").write_bytes(gzip.compress(b"version 2;" * 20))
    later = time.time_ns() - 3600 * 1_000_000_000
    for path in (page, page.with_suffix(".js.gz")):
        os.utime(path, ns=(later, later))  # as gzip -k leaves it
    time.sleep(2.1)
    app = web.Application()
    add_static(app, "/s", exfat)
    client = await aiohttp_client(app)
    async with client.get("/s/app.js", headers={"Accept-Encoding": "gzip"}) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
    async with client.get("/s/app.js") as resp:
        assert "Last-Modified" not in resp.headers
        held, etag = resp.headers["Date"], resp.headers["ETag"]
    # Rolled back in place, to an older mtime, as cp -p does; exFAT's ctime follows.
    with page.open("r+") as file:
        file.write("version 1;" * 20)
    earlier = later - 86400 * 1_000_000_000
    os.utime(page, ns=(earlier, earlier))
    assert page.stat().st_ctime_ns <= later  # no change time to tell
    for headers in (
        {"If-Modified-Since": held},
        {"If-None-Match": etag},
        {"Accept-Encoding": "gzip"},
    ):
        async with client.get("/s/app.js", headers=headers) as resp:
            assert resp.status == 200, headers
            assert "Content-Encoding" not in resp.headers
            assert await resp.text() == "version 1;" * 20


# --- the rules, as plain functions -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("index.html", False),
        ("report.2024.pdf", False),
        ("archive~old.txt", False),
        ("backup~2024.tar.gz", False),
        ("D:", True),
        ("secret.txt::$DATA", True),
        ("secret.txt:stream", True),
        ("secret.txt.", True),
        ("secret.txt ", True),
        ("CON", True),
        ("con.txt", True),
        ("nul", True),
        ("Com1.log", True),
        ("LPT9", True),
        ("COM\u00b9", True),
        ("CONOUT$", True),
        ("console.txt", False),
        ("ENV~1", True),
        ("GITIGN~1", True),
        ("PROGRA~2.TXT", True),
        ("A~BLON~1.TXT", True),
        ("AB~CDE~1", True),
        ("a<b", True),
        ("what?", True),
        ("star*", True),
        ("tab\t", True),
    ],
)
def test_names_windows_refuses(name: str, refused: bool) -> None:
    assert refused_on_windows(name) is refused


@pytest.mark.parametrize(
    ("name", "short"),
    [(".env", "ENV~1"), (".gitignore", "GITIGN~1"), ("README.TXT", None)],
)
def test_the_simulated_short_names(name: str, short: str | None) -> None:
    assert short_name(name) == short


def test_dates_are_exact_where_ctime_is_a_creation_time() -> None:
    second = 1_000_000_000
    now = 1_700_000_000 * second
    older = make_validators(
        now - 86400 * second, now - 86400 * second, 10, now, file_id=7
    )
    later = 1_700_000_000 - 3600
    since = Conditions(if_modified_since=format_http_date(later))
    assert evaluate_preconditions("GET", since, older) is FileResponseState.SEND
    assert older.etag is not None and older.etag.endswith('-7"')
    # Without a file id (a change time to trust), the older date is unchanged since.
    plain = make_validators(now - 86400 * second, now - 86400 * second, 10, now)
    assert evaluate_preconditions("GET", since, plain) is FileResponseState.NOT_MODIFIED
    # No Last-Modified beside the entity-tag; with dates alone, only it passes.
    assert older.last_modified is None and not older.date_is_strong
    dated = make_validators(
        now - 86400 * second, now - 86400 * second, 10, now, etag=False, file_id=7
    )
    assert dated.last_modified is not None
    exact = Conditions(if_modified_since=format_http_date(dated.last_modified))
    assert evaluate_preconditions("GET", exact, dated) is FileResponseState.NOT_MODIFIED
    assert evaluate_preconditions("GET", since, dated) is FileResponseState.SEND
