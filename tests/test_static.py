"""add_static and static through a real server, side by side with router.add_static."""

from __future__ import annotations

import asyncio
import hashlib
import html
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
from base64 import urlsafe_b64encode
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.pytest_plugin import AiohttpClient
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from aiohttp_conditional import ConditionalStaticResource, add_static, static

from .conftest import (
    Client,
    CountingExecutor,
    age,
    open_descriptors,
    raw_request,
    serve_in_thread,
)

SECRET = b"TOP SECRET, outside the root\n"
TIMEOUT = aiohttp.ClientTimeout(total=20)
HELLO = b"hello from inside the root\n"
Mount = Callable[..., Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A served root, with things beside it that must never be served."""
    top = tmp_path_factory.mktemp("tree")
    (top / "secret.txt").write_bytes(SECRET)
    (top / "rootevil").mkdir()
    (top / "rootevil" / "x.txt").write_bytes(SECRET)
    root = top / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "empty-dir").mkdir()
    (root / "hello.txt").write_bytes(HELLO)
    (root / "style.css").write_bytes(b"body {}\n" * 50)
    (root / "style.css.gz").write_bytes(b"pretend gzip")
    (root / "sub" / "page.html").write_bytes(b"<p>page</p>\n")
    (root / "sub" / "deeper" / "x.txt").write_bytes(b"deep\n")
    (root / "docs" / "index.html").write_bytes(b"<h1>docs</h1>\n")
    (root / "with space.txt").write_bytes(b"space\n")
    (root / "%41.txt").write_bytes(b"percent\n")
    (root / "a&b<c>.txt").write_bytes(b"markup\n")
    (root / "\u00fcn\u00efcode.txt").write_bytes(b"unicode\n")
    (root / "link_inside").symlink_to(root / "hello.txt")
    (root / "link_outside").symlink_to(top / "secret.txt")
    (root / "dirlink_outside").symlink_to(top)
    (root / "link_sibling").symlink_to(top / "rootevil" / "x.txt")
    (root / "loop").symlink_to(root / "loop")
    os.mkfifo(root / "fifo")
    age(*root.rglob("*"), top / "secret.txt")
    return root


def inside(root: Path) -> set[bytes]:
    """The contents of every regular file under root: all a 200 may carry."""
    return {
        p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()
    }


def upstream_mount_fails(reason: str) -> pytest.MarkDecorator:
    """Parametrize ``mount`` for a test where upstream's add_static is known to fail."""
    upstream = pytest.param("upstream", marks=pytest.mark.xfail(reason=reason))
    return pytest.mark.parametrize("mount", [upstream, "conditional"], indirect=True)


@pytest.fixture(params=["upstream", "conditional"])
def mount(request: pytest.FixtureRequest, aiohttp_client: AiohttpClient) -> Mount:
    """Serve a directory at a prefix with upstream's add_static or ours."""

    async def start(prefix: str, root: Path, **kwargs: Any) -> Client:
        app = web.Application()
        if request.param == "upstream":
            app.router.add_static(prefix, root, **kwargs)
        else:
            add_static(app, prefix, root, **kwargs)
        return await aiohttp_client(app)

    return start


async def raw_get(client: Client, target: str) -> tuple[int, bytes]:
    """Send a request line exactly as written; return status and body."""
    assert client.port is not None
    return await raw_request(client.port, target)


# --- what upstream's StaticResource offers --------------------------------------------


async def test_serves_files(mount: Mount, tree: Path) -> None:
    client = await mount("/static", tree)
    for name, content in [("hello.txt", HELLO), ("sub/deeper/x.txt", b"deep\n")]:
        async with client.get(f"/static/{name}") as resp:
            assert resp.status == 200
            assert await resp.read() == content
    async with client.get("/static/with%20space.txt") as resp:
        assert await resp.read() == b"space\n"
    async with client.get("/static/%2541.txt") as resp:
        assert await resp.read() == b"percent\n"
    async with client.head("/static/hello.txt") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(HELLO))


async def test_symlink_inside_the_root_is_followed(mount: Mount, tree: Path) -> None:
    client = await mount("/static", tree)
    async with client.get("/static/link_inside") as resp:
        assert (resp.status, await resp.read()) == (200, HELLO)


@upstream_mount_fails("the older file's older mtime is before the held date: a 304")
@pytest.mark.parametrize("path", ["current/app.js", "app.js"], ids=["dir", "file"])
async def test_a_symlink_switched_back_to_an_older_release_gets_200(
    mount: Mount, tmp_path: Path, path: str
) -> None:
    # A deploy rolls back by pointing a link at the release before: its files were
    # never touched since, so their own times are older than any validator held.
    root = tmp_path / "site"
    for release in ("v1", "v2"):
        (root / "releases" / release).mkdir(parents=True)
        (root / "releases" / release / "app.js").write_bytes(f"{release}".encode())
    link = root / path.split("/")[0]
    target = "releases/{}" + ("" if path.startswith("current") else "/app.js")
    link.symlink_to(target.format("v2"))
    age(*root.rglob("*"))
    client = await mount("/s", root)
    async with client.get(f"/s/{path}", timeout=TIMEOUT) as resp:
        assert await resp.read() == b"v2"
        held = resp.headers["Last-Modified"]
    (root / "next").symlink_to(target.format("v1"))
    os.replace(root / "next", link)  # a new link, swapped in at once
    age(link)
    headers = {"If-Modified-Since": held}
    async with client.get(f"/s/{path}", headers=headers, timeout=TIMEOUT) as resp:
        assert (resp.status, await resp.read()) == (200, b"v1")


@pytest.mark.parametrize("name", ["link_outside", "dirlink_outside/secret.txt"])
async def test_symlink_leaving_the_root_is_followed_only_when_asked(
    mount: Mount, tree: Path, name: str
) -> None:
    client = await mount("/static", tree)
    async with client.get(f"/static/{name}") as resp:
        assert resp.status == 404
    client = await mount("/static", tree, follow_symlinks=True)
    async with client.get(f"/static/{name}") as resp:
        assert (resp.status, await resp.read()) == (200, SECRET)


async def test_directory_gets_403_without_listing(mount: Mount, tree: Path) -> None:
    client = await mount("/static", tree)
    for path in ("/static/sub", "/static/sub/", "/static/"):
        async with client.get(path) as resp:
            assert resp.status == 403


def vary_of(resp: aiohttp.ClientResponse) -> list[str]:
    """The field names a response's Vary lists (a route's fallback adds Accept)."""
    return [name.strip() for name in resp.headers.get("Vary", "").split(",") if name]


def links(page: str) -> list[tuple[str, str]]:
    """The links of a listing, as a browser reads them: (URL, text)."""
    found = re.findall(r'<a href="([^"]*)">([^<]*)</a>', page)
    return [(html.unescape(href), html.unescape(text)) for href, text in found]


@pytest.mark.parametrize("path", ["/static/", "/static/sub", "/static/empty-dir/"])
async def test_listing_links_what_upstreams_links(
    aiohttp_client: AiohttpClient, tree: Path, path: str
) -> None:
    # The same entries at the same URLs; ours puts directories first and adds the
    # parent link, sizes and times (see test_listings_people_can_read).
    pages = []
    for use_ours in (False, True):
        app = web.Application()
        if use_ours:
            add_static(app, "/static", tree, show_index=True)
        else:
            app.router.add_static("/static", tree, show_index=True)
        client = await aiohttp_client(app)
        async with client.get(path) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            pages.append(await resp.text())
    upstream, ours = links(pages[0]), links(pages[1])
    if path != "/static/":
        assert ours[0] == ("/static/", "../")
        ours = ours[1:]
    # Where a link leads that the route does not follow, ours does not say: not
    # even that it is a directory.
    assert sorted(ours) == sorted(
        (href, "dirlink_outside") if text == "dirlink_outside/" else (href, text)
        for href, text in upstream
    )
    assert "a&amp;b&lt;c&gt;.txt" in pages[1] or path != "/static/"


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
async def test_special_files_get_403_and_are_never_opened(
    mount: Mount, tmp_path: Path, opened: list[str], kind: str
) -> None:
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.close()
    else:
        try:
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # like /dev/null
        except PermissionError:
            pytest.skip("this machine lets nobody make device files")
    client = await mount("/static", tmp_path)
    async with client.get(f"/static/{kind}", timeout=TIMEOUT) as resp:
        assert resp.status == 403
    assert opened == []


async def test_url_for_and_named_resources(mount: Mount, tree: Path) -> None:
    client = await mount("/static", tree, name="files")
    app = client.app
    assert app is not None
    resource = app.router["files"]
    assert isinstance(resource, web.StaticResource)
    assert resource in list(app.router.resources())
    assert str(resource.url_for(filename="sub/page.html")) == "/static/sub/page.html"
    assert (
        str(resource.url_for(filename="with space.txt")) == "/static/with%20space.txt"
    )


async def test_url_for_append_version_matches_upstream(
    aiohttp_client: AiohttpClient, tree: Path
) -> None:
    app = web.Application()
    ours = add_static(app, "/ours", tree)
    theirs = app.router.add_static("/theirs", tree)
    assert isinstance(theirs, web.StaticResource)
    digest = urlsafe_b64encode(hashlib.sha256(HELLO).digest()).decode()
    resources: list[web.StaticResource] = [ours, theirs]
    for resource in resources:
        url = resource.url_for(filename="hello.txt", append_version=True)
        assert url.query["v"] == digest
        for missing in ("nope.txt", "sub", "../secret.txt", "link_outside"):
            assert (
                "v" not in resource.url_for(filename=missing, append_version=True).query
            )


async def test_sub_application_prefix(
    aiohttp_client: AiohttpClient, tree: Path
) -> None:
    sub = web.Application()
    resource = add_static(sub, "/static", tree)
    app = web.Application()
    app.add_subapp("/sub", sub)
    client = await aiohttp_client(app)
    assert str(resource.url_for(filename="hello.txt")) == "/sub/static/hello.txt"
    async with client.get("/sub/static/hello.txt") as resp:
        assert (resp.status, await resp.read()) == (200, HELLO)


async def test_static_route_definition(
    aiohttp_client: AiohttpClient, tree: Path
) -> None:
    app = web.Application()
    app.add_routes([static("/files", tree, name="files", show_index=True)])
    assert isinstance(app.router["files"], ConditionalStaticResource)
    client = await aiohttp_client(app)
    async with client.get("/files/hello.txt") as resp:
        assert (resp.status, await resp.read()) == (200, HELLO)
    async with client.get("/files/") as resp:
        assert resp.status == 200


async def test_middlewares_see_not_found_raised(
    aiohttp_client: AiohttpClient, tree: Path
) -> None:
    @web.middleware
    async def fallback(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.Response(text="custom 404", status=404)

    app = web.Application(middlewares=[fallback])
    add_static(app, "/static", tree)
    client = await aiohttp_client(app)
    async with client.get("/static/nope.txt") as resp:
        assert (resp.status, await resp.text()) == (404, "custom 404")


# --- never a path outside the root ----------------------------------------------------

TRAVERSALS = [
    "../secret.txt",
    "..%2fsecret.txt",
    "..%2Fsecret.txt",
    "%2e%2e/secret.txt",
    "%2E%2E/secret.txt",
    "%2e%2e%2fsecret.txt",
    ".%2e/secret.txt",
    "%2e./secret.txt",
    "..%5csecret.txt",
    "..\\secret.txt",
    "%2e%2e%5csecret.txt",
    "sub/../../secret.txt",
    "sub/%2e%2e/%2e%2e/secret.txt",
    "sub/..%2f..%2fsecret.txt",
    "sub/deeper/../../../secret.txt",
    "%252e%252e/secret.txt",
    "%252e%252e%252fsecret.txt",
    "..%252fsecret.txt",
    "....//secret.txt",
    "..../secret.txt",
    ".../secret.txt",
    "..;/secret.txt",
    "/..%2f..%2fsecret.txt",
    "//..%2fsecret.txt",
    "%2f..%2fsecret.txt",
    "%2fetc%2fpasswd",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "//etc/passwd",
    "\\etc\\passwd",
    "%5cetc%5cpasswd",
    "\\\\server\\share\\x",
    "%5c%5cserver%5cshare%5cx",
    "C:\\Windows\\win.ini",
    "C:%5cWindows%5cwin.ini",
    "..%00/secret.txt",
    "hello.txt%00.png",
    "%00",
    "secret.txt",
    "link_outside",
    "link_outside/",
    "dirlink_outside/secret.txt",
    "dirlink_outside%2fsecret.txt",
    "dirlink_outside/root/../secret.txt",
    "sub/..%2f..%2flink_outside",
    "link_sibling",
    "../rootevil/x.txt",
    "..%2frootevil%2fx.txt",
    "%c0%ae%c0%ae/secret.txt",
    "%c0%ae%c0%ae%c0%afsecret.txt",
    "..%c0%afsecret.txt",
    "%e0%80%ae%e0%80%ae/secret.txt",
    "%ef%bc%8e%ef%bc%8e/secret.txt",
    "..%ef%bc%8fsecret.txt",
    "..%u2215secret.txt",
    "%uff0e%uff0e/secret.txt",
    "sub/../../../../../../../../etc/passwd",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "..%2f..%2f..%2f..%2fetc%2fpasswd",
    "loop",
    "loop/x",
    "fifo",
    "hello.txt/x",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_nothing_outside_the_root_is_ever_served(
    mount: Mount, tree: Path, path: str
) -> None:
    client = await mount("/static", tree)
    status, body = await raw_get(client, f"/static/{path}")
    assert status in (400, 403, 404)
    assert SECRET not in body
    assert b"root:" not in body


@upstream_mount_fails("ENAMETOOLONG escapes: a 500")
async def test_name_too_long_gets_404(mount: Mount, tree: Path) -> None:
    client = await mount("/static", tree)
    status, _ = await raw_get(client, "/static/" + "x" * 5000)
    assert status == 404


# The parts a fuzzed URL path is made of: names that exist, dot segments in every
# spelling, separators, and bytes that often confuse decoders.
url_parts = st.sampled_from(
    ["hello.txt", "sub", "deeper", "x.txt", "link_inside", "link_outside", "docs",
     "dirlink_outside", "secret.txt", "root", "rootevil", "..", ".", "%2e", "%2E", "%2f",
     "%2F", "%5c", "\\", "/", "//", "%00", "%252e", "%c0%ae", "%25", "%20", "~", ";"]
)  # fmt: skip


@pytest.fixture(scope="module")
def threaded_static(tree: Path) -> Iterator[int]:
    """Serve tree with our add_static from a thread; return the port."""
    app = web.Application()
    add_static(app, "/static", tree, show_index=True)
    with serve_in_thread(app) as port:
        yield port


@settings(max_examples=300, deadline=None)
@given(st.lists(url_parts, max_size=8).map("/".join))
def test_any_url_path_gets_only_files_inside_the_root(
    threaded_static: int, tree: Path, path: str
) -> None:
    with socket.create_connection(("127.0.0.1", threaded_static), timeout=10) as sock:
        request = f"GET /static/{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert status in (200, 301, 400, 403, 404)
    assert SECRET not in body
    if status == 200 and b"text/html" not in head:
        assert body in inside(tree)


# --- one executor job, and each file stat'ed once -------------------------------------


@pytest.fixture
def syscalls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool]]:
    """Record (call, path, on a worker thread) for every stat, lstat, fstat and open."""
    seen: list[tuple[str, str, bool]] = []
    main = threading.main_thread()

    def record(name: str, path: Any) -> None:
        where = threading.current_thread() is not main
        seen.append((name, "fd" if isinstance(path, int) else os.fsdecode(path), where))

    for name in ("stat", "lstat", "fstat", "open"):
        real = getattr(os, name)

        def spy(
            path: Any, *args: Any, _real: Any = real, _name: str = name, **kwargs: Any
        ) -> Any:
            record(_name, path)
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, spy)
    return seen


@pytest.mark.parametrize(
    ("headers", "status", "jobs", "opens"),
    [
        ({"If-None-Match": "*"}, 304, ["executor_job"], 0),
        ({"If-Match": '"x"'}, 412, ["executor_job"], 0),
        ({}, 200, ["executor_job"], 1),  # a small body: read and closed in the job
    ],
    ids=["304", "412", "200"],
)
async def test_one_job_and_no_second_stat(
    aiohttp_client: AiohttpClient,
    tree: Path,
    executor: CountingExecutor,
    syscalls: list[tuple[str, str, bool]],
    headers: dict[str, str],
    status: int,
    jobs: list[str],
    opens: int,
) -> None:
    app = web.Application()
    # The calls of the default answer: a digest's first hash reads more.
    add_static(app, "/static", tree, use_executor=True, digest=False)
    client = await aiohttp_client(app)
    syscalls.clear()
    async with client.get(
        "/static/sub/page.html", headers={"Accept-Encoding": "gzip, br", **headers}
    ) as resp:
        assert resp.status == status
        await resp.read()
    await asyncio.sleep(0.2)  # a sent file is closed by a later job
    assert executor.jobs == jobs
    file = str(tree / "sub" / "page.html")
    ours = [call[:2] for call in syscalls if call[2] and call[1] in (file, "fd")]
    assert ours.count(("lstat", file)) == 1
    assert ("stat", file) not in ours
    assert ours.count(("open", file)) == opens
    # The open file is fstat'ed once opened, and once more after a small body is read
    # from it, to know the bytes are those its headers describe.
    assert ours.count(("fstat", "fd")) == 2 * opens
    # No file-system call of ours on the event loop (asyncio's sendfile fstats there).
    assert [call for call in syscalls if not call[2] and call[0] != "fstat"] == []


async def test_a_response_that_a_middleware_replaces_closes_its_file(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    # The static route opens the file in its handler, to raise 404 from there.
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(200_000))  # streamed: the job leaves it open
    age(path)

    @web.middleware
    async def replace(request: web.Request, handler: Any) -> web.StreamResponse:
        await handler(request)
        return web.Response(text="replaced")

    app = web.Application(middlewares=[replace])
    add_static(app, "/s", tmp_path)
    client = await aiohttp_client(app)
    async with client.get("/s/big.bin", timeout=TIMEOUT) as resp:
        assert await resp.text() == "replaced"
    # Closed with the response once the server lets go of it, not left to the
    # collector (whose ResourceWarning fails the test).
    for _ in range(100):
        if open_descriptors(path) == 0:
            break
        await asyncio.sleep(0.05)
    assert open_descriptors(path) == 0


async def test_use_executor_false_on_a_mount(
    aiohttp_client: AiohttpClient, tree: Path, executor: CountingExecutor
) -> None:
    app = web.Application()
    add_static(app, "/static", tree, use_executor=False)
    client = await aiohttp_client(app)
    async with client.get("/static/sub/page.html") as resp:
        assert (resp.status, await resp.read()) == (200, b"<p>page</p>\n")
    async with client.get("/static/nope") as resp:
        assert resp.status == 404
    assert executor.jobs == []


# --- options of our own ---------------------------------------------------------------


async def test_response_options_per_mount(
    aiohttp_client: AiohttpClient, tree: Path
) -> None:
    app = web.Application()
    add_static(app, "/plain", tree, etag=False, last_modified=False)
    add_static(app, "/cached", tree, cache_control="max-age=60")
    client = await aiohttp_client(app)
    async with client.get("/plain/hello.txt", headers={"If-None-Match": "*"}) as resp:
        assert resp.status == 304  # "*" is about existence, not a validator
    async with client.get("/plain/hello.txt") as resp:
        assert "ETag" not in resp.headers
        assert "Last-Modified" not in resp.headers
    async with client.get("/cached/hello.txt") as resp:
        etag = resp.headers["ETag"]
        assert resp.headers["Cache-Control"] == "max-age=60"
    async with client.get("/cached/hello.txt", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304
        assert resp.headers["Cache-Control"] == "max-age=60"
    async with client.get("/plain/hello.txt", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 200
    with pytest.raises(TypeError, match="unexpected keyword arguments: etags"):
        add_static(app, "/bad", tree, etags=False)


async def test_index_file_and_redirect(
    aiohttp_client: AiohttpClient, tree: Path
) -> None:
    app = web.Application()
    add_static(app, "/", tree, index="index.html")
    client = await aiohttp_client(app)
    async with client.get("/docs/") as resp:
        assert (resp.status, await resp.read()) == (200, b"<h1>docs</h1>\n")
    async with client.get("/docs", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (301, "/docs/")
    async with client.get("/docs?a=1&b", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (301, "/docs/?a=1&b")
    async with client.get("/sub/") as resp:
        assert resp.status == 403


async def test_a_variant_stands_for_a_missing_file(
    mount: Mount, tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "only.txt.gz").write_bytes(b"compressed")
    (tmp_path / "sub" / "linked.txt.gz").symlink_to(tmp_path / "sub" / "only.txt.gz")
    age(*tmp_path.rglob("*"))
    client = await mount("/s", tmp_path)

    async def get(path: str, accept_encoding: str) -> tuple[int, str | None, bytes]:
        headers = {"Accept-Encoding": accept_encoding}
        async with client.get(
            path, headers=headers, auto_decompress=False, timeout=TIMEOUT
        ) as resp:
            return resp.status, resp.content_type, await resp.read()

    assert await get("/s/sub/only.txt", "gzip") == (200, "text/plain", b"compressed")
    assert (await get("/s/sub/only.txt", "br"))[0] == 404
    assert (await get("/s/sub/linked.txt", "gzip"))[0] == 404  # no symlinked variant
    assert (await get("/s/nowhere/only.txt", "gzip"))[0] == 404
    assert (await get("/s/sub/", "gzip"))[0] == 403


async def test_index_file_at_the_mount_point_is_redirected_too(
    aiohttp_client: AiohttpClient, tree: Path
) -> None:
    app = web.Application()
    add_static(app, "/docs", tree / "docs", index="index.html")
    client = await aiohttp_client(app)
    async with client.get("/docs", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (301, "/docs/")
    async with client.get("/docs/") as resp:
        assert (resp.status, await resp.read()) == (200, b"<h1>docs</h1>\n")


async def test_index_page_through_a_switched_symlink_gets_200(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    root = tmp_path / "site"
    for release in ("v1", "v2"):
        (root / "releases" / release).mkdir(parents=True)
        (root / "releases" / release / "index.html").write_bytes(release.encode())
    (root / "current").symlink_to("releases/v2")
    age(*root.rglob("*"))
    app = web.Application()
    add_static(app, "/s", root, index="index.html")
    client = await aiohttp_client(app)
    async with client.get("/s/current/", timeout=TIMEOUT) as resp:
        assert await resp.read() == b"v2"
        held = resp.headers["Last-Modified"]
    (root / "next").symlink_to("releases/v1")
    os.replace(root / "next", root / "current")
    age(root / "current")
    headers = {"If-Modified-Since": held}
    for path in ("/s/current/", "/s/current/index.html"):
        async with client.get(path, headers=headers, timeout=TIMEOUT) as resp:
            assert (resp.status, await resp.read()) == (200, b"v1")


@upstream_mount_fails("the older files' older times are before the held date: a 304")
@pytest.mark.parametrize("renamed", ["app", "."], ids=["directory", "root"])
async def test_a_release_rolled_back_by_renaming_directories_gets_200(
    mount: Mount, tmp_path: Path, renamed: str
) -> None:
    # mv app app-v2 && mv app-v1 app: no file's mtime or ctime moves, but the ctime of
    # each renamed directory does.
    site = tmp_path / "site"
    for release in ("v1", "v2"):
        (tmp_path / release / "app" / "js").mkdir(parents=True)
        (tmp_path / release / "app" / "js" / "main.js").write_bytes(release.encode())
    age(*tmp_path.rglob("main.js"))
    if renamed == "app":
        site.mkdir()
        os.rename(tmp_path / "v1" / "app", site / "app")
        os.rename(tmp_path / "v2" / "app", tmp_path / "app-v2")
    else:
        os.rename(tmp_path / "v1", site)
        os.rename(tmp_path / "v2", tmp_path / "site-v2")
    age(site / "app" / "js" / "main.js")
    client = await mount("/s", site)
    url = "/s/app/js/main.js"
    async with client.get(url, timeout=TIMEOUT) as resp:
        assert await resp.read() == b"v1"
    # The deploy of v2, then its rollback to v1.
    current = site / renamed
    os.rename(current, tmp_path / "previous")
    os.rename(tmp_path / f"{renamed.replace('.', 'site')}-v2", current)
    age(site / "app" / "js" / "main.js")
    async with client.get(url, timeout=TIMEOUT) as resp:
        assert await resp.read() == b"v2"
        held = resp.headers["Last-Modified"], resp.headers["ETag"]
    os.rename(current, tmp_path / "rolled-back")
    os.rename(tmp_path / "previous", current)
    age(site / "app" / "js" / "main.js")
    for field, value in zip(("If-Modified-Since", "If-None-Match"), held, strict=True):
        async with client.get(url, headers={field: value}, timeout=TIMEOUT) as resp:
            assert (resp.status, await resp.read()) == (200, b"v1")


async def test_the_redirect_to_a_directory_keeps_the_query_as_sent(
    aiohttp_client: AiohttpClient, tree: Path
) -> None:
    app = web.Application()
    add_static(app, "/", tree, index="index.html")
    client = await aiohttp_client(app)
    for query in ("x=%2B1", "q=a%20b&r=%26", "x=+1", "%C3%BC=1"):
        async with client.get(
            URL(f"/docs?{query}", encoded=True), allow_redirects=False
        ) as resp:
            assert (resp.status, resp.headers["Location"]) == (301, f"/docs/?{query}")


async def test_the_redirect_to_a_directory_encodes_its_name(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    names = ["100%", "a b", "x?y", "h#x", "\u00e9", "cr\rlf\n"]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "index.html").write_bytes(name.encode())
    app = web.Application()
    add_static(app, "/s", tmp_path, index="index.html")
    client = await aiohttp_client(app)
    for name in names:
        url = URL(URL.build(path=f"/s/{name}").raw_path + "?q=1%26b", encoded=True)
        async with client.get(url, allow_redirects=False) as resp:
            assert resp.status == 301
            location = resp.headers["Location"]
        assert location == URL.build(path=f"/s/{name}/").raw_path + "?q=1%26b"
        async with client.get(URL(location, encoded=True)) as resp:
            assert (resp.status, await resp.read()) == (200, name.encode())


async def test_the_redirect_keeps_an_encoded_prefix_as_it_is(
    aiohttp_client: AiohttpClient, tree: Path
) -> None:
    app = web.Application()
    add_static(app, "/a%2Fb", tree, index="index.html")
    client = await aiohttp_client(app)
    async with client.get(URL("/a%2Fb/hello.txt", encoded=True)) as resp:
        assert (resp.status, await resp.read()) == (200, HELLO)
    async with client.get(URL("/a%2Fb/docs", encoded=True), allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (301, "/a%2Fb/docs/")


async def test_a_change_while_a_middleware_runs_is_after_the_date(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    # A cache may send the Date of an answer without Last-Modified back as
    # If-Modified-Since (RFC 9110 §13.1.3): that Date must be the time the answer was
    # decided (in the route's handler), not the later time its headers left after the
    # middlewares, or a change in between passes.
    path = tmp_path / "a.txt"

    @web.middleware
    async def slow(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if "X-Replace" in request.headers:
            (tmp_path / "next").write_bytes(b"version B")
            os.replace(tmp_path / "next", path)
            await asyncio.sleep(1.2 - time.time() % 1)  # into the next second
        return response

    app = web.Application(middlewares=[slow])
    add_static(app, "/s", tmp_path)
    client = await aiohttp_client(app)
    time.sleep(1.3 - time.time() % 1)  # early in a second, the replacement too
    path.write_bytes(b"version A")  # and too new for validators
    async with client.get("/s/a.txt", headers={"X-Replace": "1"}) as resp:
        assert await resp.read() == b"version A"
        assert "Last-Modified" not in resp.headers
        date = resp.headers["Date"]
    async with client.get("/s/a.txt", headers={"If-Modified-Since": date}) as resp:
        assert (resp.status, await resp.read()) == (200, b"version B")


async def test_a_404_that_a_variant_would_answer_carries_vary(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    # RFC 9110 §12.5.5: a client that accepts br gets a 200 at the same URL, so no
    # cache may hand this 404 to it.
    (tmp_path / "site.css.br").write_bytes(b"brotli")
    age(tmp_path / "site.css.br")
    app = web.Application()
    add_static(app, "/s", tmp_path)
    client = await aiohttp_client(app)
    for accept in ("identity", "gzip", None):
        headers = {} if accept is None else {"Accept-Encoding": accept}
        async with client.get(
            "/s/site.css", headers=headers, skip_auto_headers=["Accept-Encoding"]
        ) as resp:
            assert resp.status == 404
            assert "Accept-Encoding" in vary_of(resp)
    async with client.get("/s/other.css", headers={"Accept-Encoding": "br"}) as resp:
        assert resp.status == 404
        assert "Accept-Encoding" not in vary_of(resp)


async def test_listing_through_a_symlink_leaving_the_root_links_under_the_route(
    aiohttp_client: AiohttpClient, tree: Path
) -> None:
    app = web.Application()
    add_static(app, "/s", tree, show_index=True, follow_symlinks=True)
    client = await aiohttp_client(app)
    async with client.get("/s/dirlink_outside/", timeout=TIMEOUT) as resp:
        page = await resp.text()
    assert "<title>Index of /s/dirlink_outside/</title>" in page
    assert '<a href="/s/dirlink_outside/secret.txt">secret.txt</a>' in page
    # Nothing of where the link leads on disk; the parent is the route's.
    assert str(tree.parent) not in page
    assert ("/s/", "../") in links(page)
    async with client.get("/s/dirlink_outside/secret.txt", timeout=TIMEOUT) as resp:
        assert (resp.status, await resp.read()) == (200, SECRET)


@pytest.mark.parametrize(
    "options",
    [
        {"etag": "strong"},
        {"precompressed": ("deflate",)},
        {"cache_control": "no-cache\r\nSet-Cookie: x=1"},
        {"cache_control": "max-age=60\n"},
        {"cache_control": "private\x00"},
        {"cache_control": "max-age=\u0661"},
    ],
    ids=["etag", "precompressed", "crlf", "lf", "nul", "non-ascii"],
)
def test_bad_response_options_fail_at_setup(tmp_path: Path, options: Any) -> None:
    # Not as a 500 on every request.
    with pytest.raises(ValueError):
        add_static(web.Application(), "/s", tmp_path, **options)


async def test_versioned_urls_get_immutable_caching(
    aiohttp_client: AiohttpClient, tmp_path: Path, opened: list[str]
) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(b"console.log(1)\n")
    age(path)
    app = web.Application()
    resource = add_static(app, "/s", tmp_path, immutable_versions=True)
    client = await aiohttp_client(app)
    opened.clear()
    url = resource.url_for(filename="app.js", append_version=True)
    assert resource.url_for(filename="app.js", append_version=True) == url
    assert opened == [str(path)], "hashed once, then from the cache"
    async with client.get(str(url)) as resp:
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    async with client.get("/s/app.js?v=stale") as resp:
        assert resp.status == 200
        assert "Cache-Control" not in resp.headers
    path.write_bytes(b"console.log(2)\n")
    async with client.get(str(url)) as resp:
        assert await resp.read() == b"console.log(2)\n"
        assert "Cache-Control" not in resp.headers
    assert resource.url_for(filename="app.js", append_version=True) != url


async def test_versioned_304_of_an_unreadable_file_is_no_500(
    aiohttp_client: AiohttpClient, unprivileged_executor: None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        (root / "app.js").write_bytes(b"x")
        (root / "app.js").chmod(0)
        app = web.Application()
        add_static(app, "/s", root, immutable_versions=True)
        client = await aiohttp_client(app)
        headers = {"If-None-Match": "*"}
        async with client.get("/s/app.js?v=abc", headers=headers) as resp:
            assert resp.status == 304
            assert "Cache-Control" not in resp.headers


@upstream_mount_fails("its listing raises: a 500")
async def test_a_name_that_is_not_utf8_is_listed_and_never_a_500(
    mount: Mount, tmp_path: Path
) -> None:
    (tmp_path / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name")
    client = await mount("/s", tmp_path, show_index=True)
    async with client.get("/s/", timeout=TIMEOUT) as resp:
        assert resp.status == 200
        page = await resp.text()
    assert '<a href="/s/caf%E9.txt">caf\ufffd.txt</a>' in page
    async with client.get("/s/caf%E9.txt", timeout=TIMEOUT) as resp:
        assert resp.status in (200, 404)


# --- dotfiles ---------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory served as it is: the layout that leaks .git and .env."""
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_bytes(b"[remote] url = secret\n")
    (root / ".env").write_bytes(b"TOKEN=secret\n")
    (root / ".env.gz").write_bytes(b"pretend gzip of the secret")
    (root / "sub").mkdir()
    (root / "sub" / ".hidden").write_bytes(b"secret\n")
    (root / ".well-known").mkdir()
    (root / ".well-known" / "security.txt").write_bytes(b"Contact: x\n")
    (root / ".well-known" / ".private").write_bytes(b"secret\n")
    (root / "index.html").write_bytes(b"<p>home</p>\n")
    (root / "plain-name").symlink_to(root / ".env")
    (root / "gitlink").symlink_to(root / ".git")
    return root


@pytest.mark.parametrize(
    "path",
    [
        "/s/.env",
        "/s/.git/config",
        "/s/%2eenv",
        "/s/%2Egit/config",
        "/s/sub/.hidden",
        "/s/sub/./.hidden",
        "/s/.well-known/.private",
        "/s/.git/",
        "/s/.git",
        "/s/plain-name",
        "/s/gitlink/config",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_dotfiles_are_denied_by_default(
    aiohttp_client: AiohttpClient, project: Path, path: str, method: str
) -> None:
    app = web.Application()
    add_static(app, "/s", project, show_index=True, index="index.html")
    client = await aiohttp_client(app)
    headers = {"Accept-Encoding": "gzip", "If-None-Match": "*"}
    async with client.request(method, URL(path, encoded=True), headers=headers) as resp:
        assert resp.status == 404
        assert b"secret" not in await resp.read()


async def test_well_known_is_served_and_listings_leave_dotfiles_out(
    aiohttp_client: AiohttpClient, project: Path
) -> None:
    (project / "index.html").unlink()
    app = web.Application()
    add_static(app, "/s", project, show_index=True)
    client = await aiohttp_client(app)
    async with client.get("/s/.well-known/security.txt") as resp:
        assert (resp.status, await resp.read()) == (200, b"Contact: x\n")
    async with client.get("/s/") as resp:
        listing = await resp.text()
    assert ".well-known/" in listing
    assert "sub/" in listing
    assert ".env" not in listing and ".git" not in listing
    async with client.get("/s/.well-known/") as resp:
        assert ".private" not in await resp.text()


async def test_dotfiles_allow_serves_them_as_upstream_does(
    aiohttp_client: AiohttpClient, project: Path
) -> None:
    app = web.Application()
    add_static(app, "/s", project, dotfiles="allow")
    app.router.add_static("/upstream", project)
    client = await aiohttp_client(app)
    for prefix in ("/s", "/upstream"):
        identity = {"Accept-Encoding": "identity"}
        async with client.get(f"{prefix}/.env", headers=identity) as resp:
            assert (resp.status, await resp.read()) == (200, b"TOKEN=secret\n")


def test_a_bad_dotfiles_value_fails_where_it_is_given(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dotfiles"):
        add_static(web.Application(), "/s", tmp_path, dotfiles="hide")


# --- single-page apps and 404 pages ------------------------------------------------------

NAVIGATION = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
def app_site(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_bytes(b"<div id=app></div>\n")
    (root / "404.html").write_bytes(b"<h1>Not here</h1>\n")
    (root / "assets" / "app.js").write_bytes(b"run()\n")
    (root / "about.txt").write_bytes(b"about\n")
    age(*root.rglob("*"))
    return root


async def serve_app(
    aiohttp_client: AiohttpClient, root: Path, **options: Any
) -> Client:
    app = web.Application()
    add_static(app, "/", root, **{"index": "index.html", **options})
    return await aiohttp_client(app)


@pytest.mark.parametrize(
    ("method", "path", "accept", "status"),
    [
        ("GET", "/users/42", NAVIGATION, 200),
        ("HEAD", "/users/42", NAVIGATION, 200),
        ("GET", "/users/42", "text/html", 200),
        ("GET", "/users/42", "application/json", 404),
        ("GET", "/users/42", "*/*", 404),
        ("GET", "/users/42", "text/html;q=0, */*", 404),
        ("GET", "/assets/missing.js", NAVIGATION, 404),
        ("GET", "/assets/missing.js", "*/*", 404),
        ("GET", "/logo.png", "image/avif,image/webp,*/*", 404),
        ("GET", "/style.css", "text/css,*/*;q=0.1", 404),
        ("POST", "/users/42", NAVIGATION, 405),
    ],
)
async def test_the_fallback_answers_page_navigations_only(
    aiohttp_client: AiohttpClient,
    app_site: Path,
    method: str,
    path: str,
    accept: str,
    status: int,
) -> None:
    client = await serve_app(aiohttp_client, app_site, fallback="index.html")
    async with client.request(method, path, headers={"Accept": accept}) as resp:
        assert resp.status == status
        body = await resp.read()
        if status == 200:
            assert body == (b"<div id=app></div>\n" if method == "GET" else b"")
            assert resp.headers["Content-Type"].startswith("text/html")
        if status in (200, 404):
            assert "Accept" in resp.headers["Vary"].split(", ")


async def test_the_fallback_is_the_page_with_its_own_validators(
    aiohttp_client: AiohttpClient, app_site: Path
) -> None:
    client = await serve_app(
        aiohttp_client, app_site, fallback="index.html", cache_control="no-cache"
    )
    headers = {"Accept": NAVIGATION}
    async with client.get("/", headers=headers) as resp:
        etag = resp.headers["ETag"]
    async with client.get("/deep/link", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["ETag"] == etag
        assert resp.headers["Cache-Control"] == "no-cache"
    async with client.get(
        "/deep/link", headers={**headers, "If-None-Match": etag}
    ) as resp:
        assert resp.status == 304
    async with client.get(
        "/deep/link", headers={**headers, "Range": "bytes=0-3"}
    ) as resp:
        assert (resp.status, await resp.read()) == (206, b"<div")
    # Files that exist are themselves, whatever the client accepts.
    async with client.get("/about.txt", headers=headers) as resp:
        assert (resp.status, await resp.read()) == (200, b"about\n")
        assert "Accept" not in resp.headers.get("Vary", "")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_the_404_page_answers_every_404(
    aiohttp_client: AiohttpClient, app_site: Path, method: str
) -> None:
    client = await serve_app(aiohttp_client, app_site, not_found="404.html")
    for path, headers in [
        ("/nope", {}),
        ("/assets/missing.js", {"Accept": "*/*"}),
        ("/.env", {}),
        ("/nope", {"If-None-Match": "*"}),  # §13.2.1: not for a 404
        ("/nope", {"If-Match": '"x"'}),
        ("/nope", {"Range": "bytes=0-3"}),
    ]:
        async with client.request(method, path, headers=headers) as resp:
            assert resp.status == 404, (path, headers)
            body = await resp.read()
            assert body == (b"<h1>Not here</h1>\n" if method == "GET" else b"")
            assert resp.headers["Content-Type"].startswith("text/html")
            assert "ETag" not in resp.headers
            assert "Content-Range" not in resp.headers


async def test_the_fallback_and_the_404_page_together(
    aiohttp_client: AiohttpClient, app_site: Path
) -> None:
    client = await serve_app(
        aiohttp_client, app_site, fallback="index.html", not_found="404.html"
    )
    async with client.get("/route", headers={"Accept": NAVIGATION}) as resp:
        assert (resp.status, await resp.read()) == (200, b"<div id=app></div>\n")
    async with client.get("/missing.js", headers={"Accept": "*/*"}) as resp:
        assert (resp.status, await resp.read()) == (404, b"<h1>Not here</h1>\n")
        assert "Accept" in resp.headers["Vary"]


async def test_a_missing_fallback_or_404_page_leaves_a_plain_404(
    aiohttp_client: AiohttpClient, app_site: Path
) -> None:
    client = await serve_app(
        aiohttp_client, app_site, fallback="gone.html", not_found="also-gone.html"
    )
    async with client.get("/route", headers={"Accept": NAVIGATION}) as resp:
        assert resp.status == 404


@pytest.mark.parametrize("value", ["", "/etc/passwd", "../secret", "a/../../b"])
@pytest.mark.parametrize("option", ["fallback", "not_found"])
def test_a_page_outside_the_root_fails_where_it_is_given(
    tmp_path: Path, option: str, value: str
) -> None:
    with pytest.raises(ValueError, match=option):
        add_static(web.Application(), "/s", tmp_path, **{option: value})


# --- clean URLs and immutable names ------------------------------------------------------


async def test_clean_urls_serve_the_file_with_the_extension(
    aiohttp_client: AiohttpClient, app_site: Path
) -> None:
    (app_site / "about.html").write_bytes(b"<h1>About</h1>\n")
    (app_site / "docs").mkdir()
    (app_site / "docs" / "intro.html").write_bytes(b"<h1>Intro</h1>\n")
    (app_site / ".secret.html").write_bytes(b"secret\n")
    age(*app_site.rglob("*"))
    client = await serve_app(aiohttp_client, app_site, extensions=("html", "htm"))
    for path, expected in [
        ("/about", (200, b"<h1>About</h1>\n")),
        ("/docs/intro", (200, b"<h1>Intro</h1>\n")),
        ("/about.txt", (200, b"about\n")),  # a name that is there is itself
        ("/about/", (404, None)),  # a directory was asked for
        ("/.secret", (404, None)),  # still a dotfile
        ("/nothing", (404, None)),
    ]:
        async with client.get(path) as resp:
            got = (resp.status, await resp.read() if resp.status == 200 else None)
            assert got == expected, path
    async with client.get("/about") as resp:
        etag = resp.headers["ETag"]
    async with client.get("/about", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304


@pytest.mark.parametrize(
    "immutable",
    [r"\.[0-9a-f]{8}\.(js|css)$", lambda path: path.startswith("assets/app.")],
    ids=["pattern", "function"],
)
async def test_hashed_names_are_immutable(
    aiohttp_client: AiohttpClient, app_site: Path, immutable: Any
) -> None:
    (app_site / "assets" / "app.3f2a9c1e.js").write_bytes(b"run()\n")
    age(*app_site.rglob("*"))
    client = await serve_app(
        aiohttp_client, app_site, immutable=immutable, cache_control="no-cache"
    )
    async with client.get("/assets/app.3f2a9c1e.js") as resp:
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        etag = resp.headers["ETag"]
    async with client.get(
        "/assets/app.3f2a9c1e.js", headers={"If-None-Match": etag}
    ) as resp:
        assert resp.status == 304
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    async with client.get("/about.txt") as resp:
        assert resp.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"immutable": "(unclosed"}, ValueError),
        ({"immutable": 42}, TypeError),
        ({"extensions": "html"}, ValueError),
        ({"extensions": ("../x",)}, ValueError),
        ({"extensions": (".html",)}, ValueError),
    ],
)
def test_bad_clean_url_and_immutable_options_fail_where_given(
    tmp_path: Path, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"immutable|extensions"):
        add_static(web.Application(), "/s", tmp_path, **options)


async def test_a_link_out_of_the_root_into_a_dot_directory_is_denied(
    aiohttp_client: AiohttpClient, project: Path
) -> None:
    outside = project.parent / ".outside"
    outside.mkdir()
    (outside / "key").write_bytes(b"secret\n")
    (outside / "plain").mkdir()
    (outside / "plain" / "ok.txt").write_bytes(b"fine\n")
    (project / "outlink").symlink_to(outside)
    app = web.Application()
    add_static(app, "/s", project, follow_symlinks=True)
    client = await aiohttp_client(app)
    async with client.get("/s/outlink/key") as resp:
        assert resp.status == 404


async def test_a_page_for_a_missing_path_keeps_the_vary_of_its_variants(
    aiohttp_client: AiohttpClient, app_site: Path
) -> None:
    # x.gz alone answers for x (as upstream): whether a client gets it or the page
    # depends on Accept-Encoding as well as on Accept.
    (app_site / "x.gz").write_bytes(b"pretend gzip")
    age(app_site / "x.gz")
    client = await serve_app(
        aiohttp_client, app_site, fallback="index.html", not_found="404.html"
    )
    for accept in (NAVIGATION, "*/*"):
        headers = {"Accept": accept, "Accept-Encoding": "identity"}
        async with client.get("/x", headers=headers) as resp:
            assert resp.status in (200, 404)
            vary = resp.headers["Vary"].split(", ")
            assert "Accept" in vary and "Accept-Encoding" in vary


@pytest.mark.parametrize("option", ["fallback", "not_found"])
def test_a_page_that_is_a_dotfile_fails_where_it_is_given(
    tmp_path: Path, option: str
) -> None:
    with pytest.raises(ValueError, match="dotfile"):
        add_static(web.Application(), "/s", tmp_path, **{option: ".env"})
    add_static(web.Application(), "/s", tmp_path, dotfiles="allow", **{option: ".env"})


# --- header fields of the route -----------------------------------------------------------


async def test_header_fields_go_on_the_200_206_and_304_of_files(
    aiohttp_client: AiohttpClient, app_site: Path
) -> None:
    (app_site / "about.txt.gz").write_bytes(b"pretend gzip")
    age(app_site / "about.txt.gz")
    fields = {"X-Content-Type-Options": "nosniff", "Vary": "Origin"}
    client = await serve_app(
        aiohttp_client,
        app_site,
        headers=fields,
        fallback="index.html",
        not_found="404.html",
    )
    async with client.get("/about.txt", headers={"Accept-Encoding": "gzip"}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        # The caller's Vary and the route's own, in one field.
        assert resp.headers.getall("Vary") == ["Origin, Accept-Encoding"]
        etag = resp.headers["ETag"]
    for headers, status in [
        ({"Range": "bytes=0-1", "Accept-Encoding": "gzip"}, 206),
        ({"If-None-Match": etag, "Accept-Encoding": "gzip"}, 304),
    ]:
        async with client.get("/about.txt", headers=headers) as resp:
            assert resp.status == status
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
    async with client.head("/about.txt") as resp:
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    async with client.get("/users/1", headers={"Accept": NAVIGATION}) as resp:
        assert resp.status == 200  # the fallback page is a 200 of a file
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers.getall("Vary") == ["Origin, Accept"]
    # Not on what is not the answer of a file: a 404 (page or not), 412, 416.
    for path, headers, status in [
        ("/missing.js", {}, 404),
        ("/about.txt", {"If-Match": '"other"'}, 412),
        ("/about.txt", {"Range": "bytes=99-"}, 416),
    ]:
        async with client.get(path, headers=headers) as resp:
            assert resp.status == status
            assert "X-Content-Type-Options" not in resp.headers


async def test_a_header_function_is_given_the_file_and_its_stat(
    aiohttp_client: AiohttpClient, app_site: Path
) -> None:
    (app_site / "assets" / "app.js.gz").write_bytes(b"pretend gzip")
    age(app_site / "assets" / "app.js.gz")
    calls: list[tuple[str, int]] = []

    def fields(path: str, st: os.stat_result) -> dict[str, str] | None:
        calls.append((path, st.st_size))
        if path.endswith(".js"):
            return {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
        return None

    client = await serve_app(
        aiohttp_client, app_site, headers=fields, cache_control="no-cache"
    )
    async with client.get("/assets/app.js", headers={"Accept-Encoding": "gzip"}) as r:
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        # The caller's Cache-Control for this file wins over the route's.
        assert r.headers.getall("Cache-Control") == ["no-store"]
    # The path of the file a variant stands for, the stat of what is sent.
    assert calls == [(f"{app_site}/assets/app.js", len(b"pretend gzip"))]
    async with client.get("/about.txt") as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers
        assert resp.headers["Cache-Control"] == "no-cache"
    assert len(calls) == 2  # once a request


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(ZeroDivisionError("bug"), id="raises"),
        pytest.param(["X-A: b"], id="not-a-mapping"),
        pytest.param({"X-A": "b\r\nSet-Cookie: x=1"}, id="crlf"),
        pytest.param({"X-A": 1}, id="not-a-str"),
        pytest.param({"Bad Name": "x"}, id="bad-name"),
        pytest.param({"Content-Length": "1"}, id="framing"),
    ],
)
async def test_a_header_function_that_fails_is_a_500_logged_once(
    aiohttp_client: AiohttpClient,
    app_site: Path,
    caplog: pytest.LogCaptureFixture,
    answer: object,
) -> None:
    def fields(path: str, st: os.stat_result) -> Any:
        if isinstance(answer, Exception):
            raise answer
        return answer

    big = app_site / "big.bin"
    big.write_bytes(b"x" * 200_000)  # opened to stream, not read ahead
    age(big)
    client = await serve_app(aiohttp_client, app_site, headers=fields)
    with caplog.at_level("ERROR"):
        async with client.get("/big.bin") as resp:
            assert resp.status == 500
            assert b"Set-Cookie" not in await resp.read()
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert open_descriptors(big) == 0  # the file opened to send is closed


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        (["X-A: b"], TypeError),
        ("X-A: b", TypeError),
        ({"X-A": "b\nc"}, ValueError),
        ({"X-A": 1}, ValueError),
        ({"": "x"}, ValueError),
        ({"X A": "x"}, ValueError),
        ({"ETag": '"x"'}, ValueError),
        ({"content-length": "1"}, ValueError),
        ({"Transfer-Encoding": "chunked"}, ValueError),
        ({"Digest": "sha-256=x"}, ValueError),
        ({"Content-MD5": "x"}, ValueError),
    ],
)
def test_bad_header_fields_fail_where_given(
    tmp_path: Path, headers: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="headers"):
        add_static(web.Application(), "/s", tmp_path, headers=headers)


# --- listings -------------------------------------------------------------------------


async def test_listings_people_can_read(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    (root / "b-dir").mkdir(parents=True)
    (root / "b-dir" / "inner").mkdir()
    (root / "a.txt").write_bytes(b"x" * 3000)
    (root / "c.bin").write_bytes(b"")
    (root / "Z-dir").mkdir()
    (root / "broken").symlink_to(tmp_path / "nowhere")
    (root / "b-dir" / "one").write_bytes(b"1")
    os.utime(root / "a.txt", ns=(0, 1_764_633_600_123_456_789))  # 2025-12-02 00:00:00
    client = await serve_app(aiohttp_client, root, show_index=True, index=None)
    async with client.get("/") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        page = await resp.text()
    assert "<title>Index of /</title>" in page
    # Directories first, then files; no parent link at the top of the route.
    assert [text for _, text in links(page)] == [
        "Z-dir/", "b-dir/", "a.txt", "broken", "c.bin"
    ]  # fmt: skip
    rows = dict(re.findall(r'<tr><td><a href="[^"]*">([^<]*)</a></td>(.*)</tr>', page))
    assert '<span title="3000 bytes">2.9 KiB</span>' in rows["a.txt"]
    assert (
        '<time datetime="2025-12-02T00:00:00Z">2025-12-02 00:00</time>' in rows["a.txt"]
    )
    assert '<span title="0 bytes">0 B</span>' in rows["c.bin"]
    assert '<td class="size">-</td>' in rows["b-dir/"]
    assert rows["broken"] == '<td class="size"></td><td></td>'  # nothing to stat
    async with client.get("/b-dir/inner/") as resp:
        page = await resp.text()
    assert "<title>Index of /b-dir/inner/</title>" in page
    assert links(page) == [("/b-dir/", "../")]
    async with client.get("/b-dir") as resp:
        assert links(await resp.text())[:2] == [
            ("/", "../"),
            ("/b-dir/inner", "inner/"),
        ]


@pytest.mark.parametrize(
    "name",
    [
        '"><img src=x onerror=alert(1)>',
        "x&lt.txt",
        "it's & <b>bold<b>",
        "line\nbreak",
        "%2e%2e",
        "\u202eevil.txt",
    ],
)
async def test_a_hostile_name_is_listed_as_text_and_links_to_itself(
    aiohttp_client: AiohttpClient, tmp_path: Path, name: str
) -> None:
    (tmp_path / name).write_bytes(b"itself\n")
    client = await serve_app(
        aiohttp_client, tmp_path, show_index=True, index=None, dotfiles="allow"
    )
    async with client.get("/") as resp:
        page = await resp.text()
    assert "<img" not in page and "<b>" not in page
    ((href, text),) = links(page)
    # Shown as it is, but for what would reorder the text around it.
    assert text == name.replace("\u202e", "\ufffd")
    # What a browser does with the link: percent-decoded, it is the file itself.
    async with client.get(URL(href, encoded=True)) as resp:
        assert (resp.status, await resp.read()) == (200, b"itself\n")


@pytest.fixture
def in_memory_dir() -> Iterator[Path]:
    """A directory on tmpfs, which keeps any time a file is given."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm here")
    path = Path(tempfile.mkdtemp(dir="/dev/shm"))
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("seconds", [-1e15, 1e15], ids=["before", "after"])
async def test_a_time_no_calendar_shows_is_left_blank(
    aiohttp_client: AiohttpClient, in_memory_dir: Path, seconds: float
) -> None:
    odd = in_memory_dir / "odd"
    odd.write_bytes(b"odd")
    os.utime(odd, (seconds, seconds))  # 31 million years away: datetime has none
    client = await serve_app(aiohttp_client, in_memory_dir, show_index=True, index=None)
    async with client.get("/") as resp:
        assert resp.status == 200
        page = await resp.text()
    assert '<span title="3 bytes">3 B</span></td><td></td>' in page


async def test_every_vary_line_of_the_callers_is_kept(
    aiohttp_client: AiohttpClient, app_site: Path
) -> None:
    (app_site / "about.txt.gz").write_bytes(b"pretend gzip")
    age(app_site / "about.txt.gz")
    fields = CIMultiDict([("Vary", "Origin"), ("Vary", "Cookie, accept")])
    client = await serve_app(
        aiohttp_client, app_site, headers=fields, fallback="index.html"
    )
    async with client.get("/about.txt", headers={"Accept-Encoding": "gzip"}) as resp:
        assert resp.headers.getall("Vary") == [
            "Origin, Cookie, accept, Accept-Encoding"
        ]
    async with client.get("/users/1", headers={"Accept": NAVIGATION}) as resp:
        assert resp.status == 200
        # Accept once, though the caller wrote it in lower case.
        assert resp.headers.getall("Vary") == ["Origin, Cookie, accept"]
    star = await serve_app(aiohttp_client, app_site, headers={"Vary": "*"})
    async with star.get("/about.txt", headers={"Accept-Encoding": "gzip"}) as resp:
        assert resp.headers.getall("Vary") == ["*"]


async def test_a_listing_says_nothing_of_where_an_unfollowed_link_leads(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"x" * 651)
    (tmp_path / "elsewhere").mkdir()
    (root / "filelink").symlink_to(tmp_path / "secret.bin")
    (root / "dirlink").symlink_to(tmp_path / "elsewhere")
    (root / ".hidden").write_bytes(b"y" * 77)
    (root / "plain-name").symlink_to(root / ".hidden")
    (root / "inside").symlink_to(root / "filelink")  # a chain that leaves too
    (root / "big.bin").write_bytes(b"")
    os.truncate(root / "big.bin", 1048575)
    client = await serve_app(aiohttp_client, root, show_index=True, index=None)
    async with client.get("/") as resp:
        page = await resp.text()
    rows = dict(re.findall(r'<tr><td><a href="[^"]*">([^<]*)</a></td>(.*)</tr>', page))
    for name in ("filelink", "dirlink", "plain-name", "inside"):
        assert rows[name] == '<td class="size"></td><td></td>', name
    assert "651" not in page and "77 bytes" not in page
    # Rounded as shown: not "1024.0 KiB".
    assert '<span title="1048575 bytes">1.0 MiB</span>' in rows["big.bin"]
    followed = await serve_app(
        aiohttp_client, root, show_index=True, index=None, follow_symlinks=True
    )
    async with followed.get("/") as resp:
        page = await resp.text()
    assert '<span title="651 bytes">651 B</span>' in page
    assert "dirlink/" in page
