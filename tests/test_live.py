"""Live reload: the page side, the event stream and a real browser reloading."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.pytest_plugin import AiohttpClient

from aiohttp_conditional import add_static, static
from aiohttp_conditional._clock import moment
from aiohttp_conditional._inject import Injection, inject, injected_tag
from aiohttp_conditional._kernel import FileSystem
from aiohttp_conditional._live import Reloader
from aiohttp_conditional._lookup import Asked, Options, look_up
from aiohttp_conditional._preconditions import Conditions, FileResponseState
from benchmarks.load import CliServer
from tests.chromium import CHROMIUM, DevTools, chromium
from tests.conftest import CountingExecutor, age

SNIPPET = b'<script src="/__reload__/client.js"></script>'
PAGE = (
    b"<!doctype html><html><head><title>t</title></head><body><p>hi</p></body></html>\n"
)


# --- the page made anew -----------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (b"<body>x</body>", b"<body>x" + SNIPPET + b"</body>"),
        (b"<BODY>x</BODY >", b"<BODY>x" + SNIPPET + b"</BODY >"),
        (b"<body>x</body\n>", b"<body>x" + SNIPPET + b"</body\n>"),
        # The last one: the first is in a script's string.
        (
            b"<body><script>'</body>'</script></body>",
            b"<body><script>'</body>'</script>" + SNIPPET + b"</body>",
        ),
        (b"<p>no body end", b"<p>no body end" + SNIPPET),
        (b"<body></bodyguard>", b"<body></bodyguard>" + SNIPPET),
        (b"", SNIPPET),
    ],
    ids=["plain", "upper-case", "newline", "last", "none", "longer-name", "empty"],
)
def test_the_script_goes_before_the_last_body_end(page: bytes, expected: bytes) -> None:
    assert inject(page, SNIPPET) == expected


@pytest.mark.parametrize("mark", [b"\xff\xfe", b"\xfe\xff"], ids=["le", "be"])
def test_a_utf16_page_is_left_as_it_is(mark: bytes) -> None:
    assert inject(mark + "<body></body>".encode("utf-16-le"), SNIPPET) is None


def test_the_mark_changes_with_the_snippet_and_with_the_script() -> None:
    first = Injection.of(SNIPPET, b"script 1")
    assert Injection.of(SNIPPET, b"script 1") == first
    assert Injection.of(SNIPPET, b"script 2").mark != first.mark
    assert Injection.of(SNIPPET + b" ", b"script 1").mark != first.mark
    assert injected_tag('"abc"', first.mark) == f'"abc-live.{first.mark}"'
    assert injected_tag(None, first.mark) is None


# --- through a real server --------------------------------------------------------


def live_app(root: Path, **options: object) -> web.Application:
    app = web.Application()
    add_static(app, "/", root, index="index.html", live=True, **options)
    return app


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_bytes(PAGE)
    (root / "style.css").write_text("p { color: red }\n")
    age(root / "index.html", root / "style.css")
    return root


async def test_a_page_is_sent_with_the_script_and_a_tag_of_its_own(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    client = await aiohttp_client(live_app(site))
    plain = web.Application()
    add_static(plain, "/", site, index="index.html")
    plain_client = await aiohttp_client(plain)
    async with plain_client.get("/index.html") as resp:
        plain_tag = resp.headers["ETag"]
    for path in ("/", "/index.html"):
        async with client.get(path) as resp:
            assert resp.status == 200
            body = await resp.read()
            assert body == PAGE.replace(b"</body>", SNIPPET + b"</body>")
            assert resp.headers["Content-Length"] == str(len(body))
            assert resp.headers["Content-Type"] == "text/html"
            tag = resp.headers["ETag"]
            assert tag != plain_tag
            assert tag.startswith(plain_tag[:-1] + "-live.")
            # A date would not tell the page from the file, and no range is kept.
            assert "Last-Modified" not in resp.headers
            assert "Accept-Ranges" not in resp.headers
    async with client.head("/") as resp:
        assert resp.headers["Content-Length"] == str(len(body))
        assert resp.headers["ETag"] == tag
    async with client.get("/", headers={"If-None-Match": tag}) as resp:
        assert resp.status == 304
        assert resp.headers["ETag"] == tag
    async with client.get("/", headers={"If-None-Match": plain_tag}) as resp:
        assert resp.status == 200
    async with client.get("/", headers={"If-Match": plain_tag}) as resp:
        assert resp.status == 412
    async with client.get("/", headers={"If-Match": tag}) as resp:
        assert resp.status == 200
    # Range is ignored (RFC 9110 §14.2): the page is made whole.
    async with client.get("/", headers={"Range": "bytes=0-3"}) as resp:
        assert resp.status == 200
        assert await resp.read() == body
    # Rewritten at the same size: another tag, and no 304 for the old one.
    (site / "index.html").write_bytes(PAGE.replace(b"hi", b"ho"))
    age(site / "index.html")
    async with client.get("/", headers={"If-None-Match": tag}) as resp:
        assert resp.status == 200
        assert b"ho" in await resp.read()
        assert resp.headers["ETag"] != tag


async def test_a_page_changed_within_the_second_gets_no_tag(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    client = await aiohttp_client(live_app(site))
    (site / "index.html").write_bytes(PAGE.replace(b"hi", b"ha"))
    async with client.get("/") as resp:
        assert resp.status == 200
        assert b"ha" in await resp.read()
        assert "ETag" not in resp.headers


async def test_the_script_of_another_prefix_makes_other_tags(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    app = web.Application()
    add_static(app, "/a", site, live=True)
    add_static(app, "/b", site, live=True)
    client = await aiohttp_client(app)
    async with client.get("/a/index.html") as first:
        assert b'<script src="/a/__reload__/client.js">' in await first.read()
    async with client.get("/b/index.html") as second:
        assert b'<script src="/b/__reload__/client.js">' in await second.read()
    assert first.headers["ETag"] != second.headers["ETag"]
    async with client.get(
        "/b/index.html", headers={"If-None-Match": first.headers["ETag"]}
    ) as resp:
        assert resp.status == 200


async def test_files_that_are_not_html_are_untouched(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    plain = web.Application()
    add_static(plain, "/", site)
    plain_client = await aiohttp_client(plain)
    client = await aiohttp_client(live_app(site))
    for path in ("/style.css",):
        async with plain_client.get(path) as expected, client.get(path) as resp:
            assert await resp.read() == await expected.read()
            for name in ("ETag", "Last-Modified", "Accept-Ranges", "Content-Length"):
                assert resp.headers[name] == expected.headers[name]
    async with client.get("/style.css", headers={"Range": "bytes=0-0"}) as resp:
        assert resp.status == 206
        assert await resp.read() == b"p"


async def test_a_page_is_made_from_the_file_not_its_compressed_variant(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    import gzip

    (site / "index.html.gz").write_bytes(gzip.compress(PAGE))
    age(site / "index.html.gz")
    client = await aiohttp_client(live_app(site))
    async with client.get("/", headers={"Accept-Encoding": "gzip"}) as resp:
        assert "Content-Encoding" not in resp.headers
        assert SNIPPET in await resp.read()


async def test_listings_and_the_404_page_get_the_script(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    (site / "sub").mkdir()
    (site / "404.html").write_bytes(b"<body>missing</body>")
    client = await aiohttp_client(live_app(site, show_index=True, not_found="404.html"))
    async with client.get("/sub/") as resp:
        assert resp.status == 200
        assert SNIPPET + b"</body>" in await resp.read()
    async with client.get("/nothing") as resp:
        assert resp.status == 404
        assert await resp.read() == b"<body>missing" + SNIPPET + b"</body>"


async def test_the_script_revalidates(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    client = await aiohttp_client(live_app(site))
    async with client.get("/__reload__/client.js") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert resp.headers["Cache-Control"] == "no-cache"
        assert "EventSource" in await resp.text()
        tag = resp.headers["ETag"]
    async with client.get(
        "/__reload__/client.js", headers={"If-None-Match": tag}
    ) as resp:
        assert resp.status == 304
    async with client.get("/__reload__/other") as resp:
        assert resp.status == 404


async def test_live_needs_the_application() -> None:
    app = web.Application()
    with pytest.raises(TypeError, match="live=True needs the application"):
        add_static(app.router, "/", ".", live=True)
    with pytest.raises(TypeError, match="live=True needs the application"):
        app.add_routes([static("/", ".", live=True)])


# --- the event stream ---------------------------------------------------------------


class Stream:
    """One client of the event stream, reading its events one at a time."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self) -> tuple[str, dict[str, object]]:
        fields: dict[str, str] = {}
        while True:
            line = (await self.response.content.readline()).decode()
            if not line:
                raise EOFError
            line = line.rstrip("\n")
            if not line:
                if "event" in fields:
                    return fields["event"], json.loads(fields["data"])
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value


async def open_streams(
    session: aiohttp.ClientSession, url: str, count: int
) -> list[Stream]:
    async def one() -> Stream:
        response = await session.get(url)
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        stream = Stream(response)
        event, _ = await stream.next()
        assert event == "hello"
        return stream

    return list(await asyncio.gather(*(one() for _ in range(count))))


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_hundred_clients_each_get_one_event_per_change(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    app = web.Application()
    resource = add_static(app, "/", site, live=True)
    client = await aiohttp_client(app)
    url = client.make_url("/__reload__/events")
    tasks_before = len(asyncio.all_tasks())
    fds_before = descriptors()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        streams = await open_streams(session, str(url), 100)
        assert resource.live is not None and resource.live.streams == 100
        # A build writing many files at once is one change.
        for number in range(50):
            (site / f"page{number}.html").write_text(f"<p>{number}</p>")
        (site / "style.css").write_text("p { color: blue }\n")
        events = await asyncio.gather(*(stream.next() for stream in streams))
        for event, data in events:
            assert event == "change"
            assert data["seq"] == 1
            assert data["paths"] == sorted(
                [*(f"/page{n}.html" for n in range(50)), "/style.css"]
            )
        # Changes the route would not serve, or an editor's files: no event.  The next
        # event is the next change's, numbered 2.
        (site / ".env").write_text("SECRET=1")
        (site / "index.html.swp").write_text("x")
        (site / "index.html~").write_text("x")
        await asyncio.sleep(0.5)
        (site / "about.html").write_text("<p>about</p>")
        for event, data in await asyncio.gather(*(s.next() for s in streams)):
            assert (event, data["seq"], data["paths"]) == ("change", 2, ["/about.html"])
        for stream in streams:
            stream.response.close()
    # Gone clients leave nothing behind: no stream, no task, no descriptor.
    assert resource.live is not None
    for _ in range(50):
        if resource.live.streams == 0 and len(asyncio.all_tasks()) <= tasks_before:
            break
        await asyncio.sleep(0.1)
    assert resource.live.streams == 0
    assert len(asyncio.all_tasks()) <= tasks_before
    assert descriptors() <= fds_before


async def test_a_new_stream_is_told_of_the_last_change(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    client = await aiohttp_client(live_app(site))
    async with client.get("/__reload__/events") as resp:
        first = Stream(resp)
        event, hello = await first.next()
        assert (event, hello["seq"]) == ("hello", 0)
        (site / "style.css").write_text("p { color: green }\n")
        assert (await first.next())[1]["seq"] == 1
    async with client.get("/__reload__/events") as resp:
        event, again = await Stream(resp).next()
    assert event == "hello"
    assert again["seq"] == 1
    assert again["server"] == hello["server"]
    assert isinstance(again["age"], int) and again["age"] >= 0


async def test_streams_end_when_the_server_stops(site: Path) -> None:
    runner = web.AppRunner(live_app(site), shutdown_timeout=30)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        (stream,) = await open_streams(
            session, f"http://127.0.0.1:{port}/__reload__/events", 1
        )
        started = time.monotonic()
        await runner.cleanup()
        # Ended by the server, not left for aiohttp's 30 s to cut.
        with pytest.raises((EOFError, aiohttp.ClientPayloadError)):
            await stream.next()
        assert time.monotonic() - started < 25


async def test_a_stream_past_the_limit_is_asked_to_come_back_later(
    aiohttp_client: AiohttpClient, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aiohttp_conditional._live.MAX_STREAMS", 2)
    client = await aiohttp_client(live_app(site))
    url = str(client.make_url("/__reload__/events"))
    async with aiohttp.ClientSession() as session:
        streams = await open_streams(session, url, 2)
        # Not an error status, after which a browser would never come back.
        async with session.get(url) as resp:
            assert resp.status == 200
            assert await resp.read() == b"retry: 5000\n\n"
        for stream in streams:
            stream.response.close()


async def test_a_client_that_reads_nothing_is_cut(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    app = web.Application()
    resource = add_static(app, "/", site, live=True)
    client = await aiohttp_client(app)
    assert resource.live is not None
    _, writer = await asyncio.open_connection("127.0.0.1", client.port, limit=1024)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.write(b"GET /__reload__/events HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    for _ in range(50):
        if resource.live.streams:
            break
        await asyncio.sleep(0.05)
    # Large events it never reads: its queue fills, and it is let go.
    names = [str(site / f"{'x' * 200}{n}.html") for n in range(1000)]
    for _ in range(200):
        resource.live.publish(names)
        await asyncio.sleep(0)
    for _ in range(100):
        if not resource.live.streams:
            break
        await asyncio.sleep(0.05)
    assert resource.live.streams == 0
    writer.close()


def test_publish_names_paths_inside_the_route(tmp_path: Path) -> None:
    reloader = Reloader(str(tmp_path), "/docs", lambda path: path.startswith("."))
    assert (
        reloader.url_path(str(tmp_path / "a b" / "é.html")) == "/docs/a%20b/%C3%A9.html"
    )
    assert reloader.url_path(str(tmp_path / ".git" / "HEAD")) is None
    assert reloader.url_path(str(tmp_path.parent / "other")) is None


async def test_a_directory_made_anew_is_watched_anew(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    client = await aiohttp_client(live_app(site))
    async with client.get("/__reload__/events") as resp:
        stream = Stream(resp)
        await stream.next()
        # As a build that begins with rm -rf: its watches went with the directory,
        # and the new one may even have its number.
        shutil.rmtree(site)
        site.mkdir()
        # Once the new directory is watched, all of it is told as changed...
        while (await asyncio.wait_for(stream.next(), 10))[1]["paths"] != ["/"]:
            pass
        # ...and then each change in it.
        (site / "index.html").write_bytes(PAGE)
        _, data = await asyncio.wait_for(stream.next(), 10)
        assert data["paths"] == ["/index.html"]


async def test_a_sub_application_s_pages_load_the_script_below_its_prefix(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    sub = web.Application()
    add_static(sub, "/", site, index="index.html", live=True)
    app = web.Application()
    app.add_subapp("/docs", sub)
    client = await aiohttp_client(app)
    async with client.get("/docs/") as resp:
        assert b'<script src="/docs/__reload__/client.js">' in await resp.read()
    async with client.get("/docs/__reload__/client.js") as resp:
        assert resp.status == 200
    async with client.get("/docs/__reload__/events") as resp:
        stream = Stream(resp)
        await stream.next()
        (site / "style.css").write_text("p { color: navy }\n")
        assert (await stream.next())[1]["paths"] == ["/docs/style.css"]


class RewritingDisk(FileSystem):
    """The real file system, where a page is rewritten while it is read.

    A race made to happen, on a real file: the first ``times`` reads of the page
    are each followed by a rewrite, as an editor saving meanwhile would make.
    """

    def __init__(self, path: Path, times: int) -> None:
        self.path = path
        self.times = times

    def read(self, fd: int, size: int, offset: int) -> bytes | None:
        data = super().read(fd, size, offset)
        if self.times:
            self.times -= 1
            with self.path.open("r+b") as file:
                file.write(b"<!-- " + str(self.times).encode() + b" -->")
        return data


def asked(**conditions: str) -> Asked:
    return Asked("GET", Conditions(**conditions), None, moment())


INJECTION = Injection.of(SNIPPET)


def test_a_page_changed_while_read_is_read_again(site: Path) -> None:
    page = site / "index.html"
    options = Options(inject=INJECTION, last_modified=False, precompressed=())
    outcome = look_up(RewritingDisk(page, 1), str(page), options, asked())
    assert outcome.decision.state is FileResponseState.SEND
    # What is sent is what the file holds now, with the script.
    assert outcome.data == inject(page.read_bytes(), SNIPPET)
    assert outcome.size == len(outcome.data or b"")


def test_a_page_that_keeps_changing_while_read_passes_no_if_match(site: Path) -> None:
    page = site / "index.html"
    options = Options(inject=INJECTION, last_modified=False, precompressed=())
    tag = look_up(FileSystem(), str(page), options, asked()).validators
    assert tag is not None and tag.etag is not None
    outcome = look_up(
        RewritingDisk(page, 10), str(page), options, asked(if_match=tag.etag)
    )
    assert outcome.decision.state is FileResponseState.PRECONDITION_FAILED
    assert outcome.file is None
    outcome = look_up(RewritingDisk(page, 10), str(page), options, asked())
    assert outcome.decision.state is FileResponseState.SEND
    assert outcome.validators is not None and outcome.validators.etag is None


async def test_a_large_page_is_read_in_the_job(
    aiohttp_client: AiohttpClient, site: Path, executor: CountingExecutor
) -> None:
    (site / "big.html").write_bytes(b"<body>" + b"x" * 100_000 + b"</body>")
    age(site / "big.html")
    client = await aiohttp_client(live_app(site, use_executor="auto"))
    for _ in range(2):  # once to have its pages cached
        async with client.get("/big.html") as resp:
            assert SNIPPET in await resp.read()
    jobs = len(executor.jobs)
    async with client.get("/big.html") as resp:
        assert SNIPPET in await resp.read()
    assert len(executor.jobs) == jobs + 1


# --- the command line ---------------------------------------------------------------


def run_cli(
    *arguments: str, without_watchfiles: bool = False
) -> subprocess.CompletedProcess[str]:
    code = "import sys\n"
    if without_watchfiles:
        # Simulated openly: this machine has watchfiles, a user's may not.
        code += "sys.modules['watchfiles'] = None\n"
    code += "from aiohttp_conditional._cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run(
        [sys.executable, "-c", code, *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_live_without_watchfiles_says_what_to_install(tmp_path: Path) -> None:
    done = run_cli(str(tmp_path), "--live", without_watchfiles=True)
    assert done.returncode == 2
    assert "pip install 'aiohttp-conditional[live]'" in done.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="--workers is for Linux")
def test_live_serves_from_one_process(tmp_path: Path) -> None:
    done = run_cli(str(tmp_path), "--live", "--workers", "2")
    assert done.returncode == 2
    assert "--live" in done.stderr


# --- a real browser ------------------------------------------------------------------

PAGE_TEMPLATE = """<!doctype html><html><head>
<link rel="stylesheet" href="style.css"><script src="app.js"></script></head>
<body data-version="{version:03d}">
<script>sessionStorage.loads = String(Number(sessionStorage.loads || 0) + 1)</script>
</body></html>
"""
STATE = """JSON.stringify([
  document.body ? document.body.dataset.version : null,
  document.documentElement.dataset.js || null,
  getComputedStyle(document.documentElement).getPropertyValue("--v").trim(),
  document.readyState === "complete" ? Number(sessionStorage.loads) : null])"""


class Site:
    """A page, its stylesheet and its script, each rewritten at the same size."""

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.root = root
        self.version = self.css = self.js = 1
        self.write_page(1)
        self.write_css(1)
        self.write_js(1)

    def write_page(self, version: int) -> None:
        self.version = version
        (self.root / "index.html").write_text(PAGE_TEMPLATE.format(version=version))

    def write_css(self, version: int) -> None:
        self.css = version
        (self.root / "style.css").write_text(f':root {{ --v: "{version:03d}"; }}\n')

    def write_js(self, version: int) -> None:
        self.js = version
        (self.root / "app.js").write_text(
            f"document.documentElement.dataset.js = '{version:03d}';\n"
        )

    def expected(self) -> list[object]:
        return [f"{self.version:03d}", f"{self.js:03d}", f'"{self.css:03d}"']


async def page_state(browser: DevTools) -> list[object] | None:
    reply = await browser.call("Runtime.evaluate", expression=STATE, returnByValue=True)
    value = reply.get("result", {}).get("value")
    return None if not isinstance(value, str) else list(json.loads(value))


async def shows(browser: DevTools, site: Site, loads: int | None) -> None:
    """Wait for the page to show the site's newest files; check how often it loaded.

    ``loads`` None: however often.
    """
    state = None
    for _ in range(300):
        state = await page_state(browser)
        if state is not None and state[:3] == site.expected() and state[3] is not None:
            break
        await asyncio.sleep(0.05)
    assert state is not None and state[:3] == site.expected()
    if loads is None:
        return
    # Then no other load follows: one per change.
    await asyncio.sleep(1.0)
    assert await page_state(browser) == [*site.expected(), loads]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[DevTools]:
    async with chromium(tmp_path / "profile") as tools:
        yield tools


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
@pytest.mark.parametrize(
    "options", [(), ("--cache-control=",)], ids=["no-cache", "no-cache-control"]
)
async def test_the_browser_reloads_once_per_change_and_shows_the_newest(
    browser: DevTools, tmp_path: Path, options: tuple[str, ...]
) -> None:
    site = Site(tmp_path / "site")
    root = site.root
    server = CliServer(root, "--live", *options)
    try:
        await browser.load("Page.navigate", url=f"http://127.0.0.1:{server.port}/")
        await shows(browser, site, loads=1)
        # The page rewritten twice at once: one reload, the newest page.
        site.write_page(2)
        site.write_page(3)
        await shows(browser, site, loads=2)
        # Only stylesheets: swapped without a reload.
        site.write_css(2)
        site.write_css(3)
        await shows(browser, site, loads=2)
        # The script and the page: one reload, both new.
        site.write_js(2)
        site.write_page(4)
        await shows(browser, site, loads=3)
        # Files the route does not serve, or an editor's: nothing.
        (root / ".notes").write_text("x")
        (root / "index.html.swp").write_text("x")
        (root / "index.html~").write_text("x")
        await shows(browser, site, loads=3)
        # Within one second: a change, its reload, and another change of the same
        # size, which the first version's validators must not pass for.
        site.write_page(5)
        await shows(browser, site, loads=4)
        site.write_page(6)
        await shows(browser, site, loads=5)
        # Later, when the page has validators: the page only, then all three.
        await asyncio.sleep(1.1)
        site.write_page(7)
        await shows(browser, site, loads=6)
        site.write_css(4)
        site.write_js(3)
        site.write_page(8)
        await shows(browser, site, loads=7)
        # The server stopped, the page changed meanwhile, the server back: the page
        # reconnects and reloads.
        server.stop()
        site.write_page(9)
        server = CliServer(root, "--live", *options, port=server.port)
        await shows(browser, site, loads=8)
    finally:
        server.stop()


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
async def test_without_cache_control_a_script_the_browser_keeps_is_fetched_anew(
    browser: DevTools, tmp_path: Path
) -> None:
    site = Site(tmp_path / "site")
    root = site.root
    server = CliServer(root, "--live", "--cache-control=")
    try:
        # Without Cache-Control, a browser keeps a file unasked for a tenth of the
        # time since its Last-Modified (RFC 9111 §4.2.2): 20 s old, for 2 s.
        await asyncio.sleep(20)
        await browser.load("Page.navigate", url=f"http://127.0.0.1:{server.port}/")
        assert (await page_state(browser)) == [*site.expected(), 1]
        site.write_js(2)
        site.write_page(2)
        await shows(browser, site, loads=2)
    finally:
        server.stop()


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
async def test_many_tabs_share_one_stream_and_all_reload(
    browser: DevTools, tmp_path: Path
) -> None:
    site = Site(tmp_path / "site")
    root = site.root
    server = CliServer(root, "--live")
    url = f"http://127.0.0.1:{server.port}/"
    try:
        async with contextlib.AsyncExitStack() as stack:
            # More tabs than the six connections a browser opens to one server.
            tabs = [browser]
            for _ in range(7):
                tabs.append(await stack.enter_async_context(browser.new_tab()))
            for tab in tabs:
                await tab.load("Page.navigate", url=url)
            for tab in tabs:
                await shows(tab, site, loads=None)
            # Every tab can still fetch: the streams do not hold its connections.
            reply = await tabs[-1].call(
                "Runtime.evaluate",
                expression="fetch('/app.js').then((r) => r.status)",
                awaitPromise=True,
                returnByValue=True,
            )
            assert reply["result"]["value"] == 200
            site.write_page(2)
            for tab in tabs:
                await shows(tab, site, loads=None)
    finally:
        server.stop()


async def test_a_page_navigation_to_a_missing_path_gets_a_page_that_reloads(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    (site / "app.js.gz").write_bytes(b"")
    client = await aiohttp_client(live_app(site))
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    async with client.get("/missing.html", headers=html) as resp:
        assert resp.status == 404
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        assert (await resp.read()).endswith(SNIPPET)
    # A script's request, or any other, gets aiohttp's own 404.
    async with client.get("/missing.js") as resp:
        assert resp.status == 404
        assert SNIPPET not in await resp.read()
    # What the 404 varies on is kept.
    async with client.get(
        "/app.js", headers={**html, "Accept-Encoding": "identity"}
    ) as resp:
        assert resp.status == 404
        assert resp.headers["Vary"] == "Accept-Encoding"
        assert (await resp.read()).endswith(SNIPPET)


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
async def test_a_page_comes_back_after_its_file_was_away(
    browser: DevTools, tmp_path: Path
) -> None:
    site = Site(tmp_path / "site")
    root = site.root
    server = CliServer(root, "--live")
    try:
        await browser.load("Page.navigate", url=f"http://127.0.0.1:{server.port}/")
        await shows(browser, site, loads=1)
        # A build that begins with rm -rf, and writes the site anew a moment later.
        shutil.rmtree(root)
        root.mkdir()
        await asyncio.sleep(0.3)
        site.write_css(2)
        site.write_js(2)
        site.write_page(2)
        await shows(browser, site, loads=None)
        # A page not there yet: its 404 reloads once it is.
        later = f"http://127.0.0.1:{server.port}/later.html"
        await browser.load("Page.navigate", url=later)
        (root / "later.html").write_text(PAGE_TEMPLATE.format(version=42))
        site.version = 42
        await shows(browser, site, loads=None)
    finally:
        server.stop()


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
async def test_a_stylesheet_no_link_loads_reloads_the_page(
    browser: DevTools, tmp_path: Path
) -> None:
    site = Site(tmp_path / "site")
    # The page's stylesheet is imported by a <style>, not loaded by a <link>.
    (site.root / "index.html").write_text(
        PAGE_TEMPLATE.format(version=1).replace(
            '<link rel="stylesheet" href="style.css">',
            '<style>@import "style.css";</style>',
        )
    )
    server = CliServer(site.root, "--live")
    try:
        await browser.load("Page.navigate", url=f"http://127.0.0.1:{server.port}/")
        await shows(browser, site, loads=1)
        site.write_css(2)
        await shows(browser, site, loads=2)
    finally:
        server.stop()
