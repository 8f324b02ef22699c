"""Where the file work of a request runs, counted: executor jobs, and opens."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.pytest_plugin import AiohttpClient

from aiohttp_conditional import ConditionalFileResponse, add_static
from aiohttp_conditional._clock import moment
from aiohttp_conditional._jobs import check_use_executor
from aiohttp_conditional._kernel import (
    CACHE,
    CACHED_LOOKUPS,
    DISK,
    FileSystem,
    WouldBlock,
)
from aiohttp_conditional._lookup import Asked, Options, look_up
from aiohttp_conditional._preconditions import Conditions

from .conftest import Client, CountingExecutor, age, drop_caches, open_descriptors

needs_cached_lookups = pytest.mark.skipif(
    not CACHED_LOOKUPS, reason="no openat2(RESOLVE_CACHED) on this kernel"
)
BODY = b"<p>a page</p>\n" * 50


async def serve_both(
    aiohttp_client: AiohttpClient, root: Path, **options: Any
) -> Client:
    """Serve root/name from a handler at /h/name and from add_static at /s/name.

    In the automatic mode unless the options say otherwise, whatever mode this run
    gives the others.
    """
    options.setdefault("use_executor", "auto")

    async def handler(request: web.Request) -> web.StreamResponse:
        return ConditionalFileResponse(root / request.match_info["name"], **options)

    app = web.Application()
    app.router.add_get("/h/{name}", handler)
    add_static(app, "/s", root, **options)
    return await aiohttp_client(app)


async def ask(client: Client, url: str, **headers: str) -> tuple[int, bytes, str]:
    fields = {name.replace("_", "-"): value for name, value in headers.items()}
    async with client.get(url, headers=fields) as resp:
        return resp.status, await resp.read(), resp.headers.get("ETag", "")


@pytest.fixture
def site(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A small site on the disk, or with ``indirect`` "tmpfs" on a tmpfs of its own."""
    root = tmp_path / "site"
    root.mkdir()
    mounted = getattr(request, "param", "disk") == "tmpfs"
    if mounted:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "tmpfs", str(root)], capture_output=True
        )
        if result.returncode:
            pytest.skip(f"cannot mount here: {result.stderr.decode().strip()}")
    (root / "page.html").write_bytes(BODY)
    (root / "app.js").write_bytes(b"x" * 1000)
    (root / "app.js.gz").write_bytes(gzip.compress(b"x" * 1000))
    age(root / "page.html", root / "app.js", root / "app.js.gz")
    yield root
    if mounted:
        subprocess.run(["umount", "--lazy", str(root)], check=True)


@needs_cached_lookups
@pytest.mark.parametrize("site", ["disk", "tmpfs"], indirect=True)
@pytest.mark.parametrize("route", ["h", "s"], ids=["handler", "add_static"])
async def test_warm_requests_take_no_job(
    aiohttp_client: AiohttpClient,
    executor: CountingExecutor,
    opened: list[str],
    site: Path,
    route: str,
) -> None:
    client = await serve_both(aiohttp_client, site)
    url = f"/{route}/page.html"
    status, body, etag = await ask(client, url)  # the first may need the disk
    assert (status, body) == (200, BODY)
    executor.jobs.clear()
    opened.clear()
    for _ in range(3):
        assert await ask(client, url, If_None_Match=etag) == (304, b"", etag)
        assert await ask(client, url) == (200, BODY, etag)
        assert await ask(client, url, Range="bytes=3-5") == (206, BODY[3:6], etag)
    # The missing variants are known missing to the kernel, or on tmpfs looked up
    # in memory: no job for them either.  tmpfs cannot read without blocking, so its
    # small bodies are streamed, as large ones are, and their files closed in a
    # batch of their own.
    assert [job for job in executor.jobs if job != "close_files"] == []
    assert opened == [str(site / "page.html")] * 6  # only to send, never for a 304
    for _ in range(100):
        if open_descriptors(site / "page.html") == 0:
            break
        await asyncio.sleep(0.01)
    assert open_descriptors(site / "page.html") == 0
    if _reads_from_the_page_cache(site / "page.html"):
        assert executor.jobs == []  # read and closed on the loop


def _reads_from_the_page_cache(path: Path) -> bool:
    """Tell whether the file's file system reads with RWF_NOWAIT (tmpfs does not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return CACHE.read(fd, 1, 0) is not None
    finally:
        os.close(fd)


@needs_cached_lookups
@pytest.mark.parametrize("route", ["h", "s"], ids=["handler", "add_static"])
async def test_a_variant_is_chosen_from_the_caches(
    aiohttp_client: AiohttpClient,
    executor: CountingExecutor,
    site: Path,
    route: str,
) -> None:
    client = await serve_both(aiohttp_client, site)
    url = f"/{route}/app.js"
    await ask(client, url, Accept_Encoding="br, gzip")
    executor.jobs.clear()
    for _ in range(3):
        async with client.get(
            url, headers={"Accept-Encoding": "br, gzip"}, auto_decompress=False
        ) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert resp.headers["Vary"] == "Accept-Encoding"
            assert gzip.decompress(await resp.read()) == b"x" * 1000
    assert executor.jobs == []


@needs_cached_lookups
@pytest.mark.parametrize("route", ["h", "s"], ids=["handler", "add_static"])
@pytest.mark.parametrize("kind", ["304", "200"])
async def test_after_the_caches_are_dropped_one_job_answers(
    aiohttp_client: AiohttpClient,
    executor: CountingExecutor,
    site: Path,
    route: str,
    kind: str,
) -> None:
    client = await serve_both(aiohttp_client, site)
    url = f"/{route}/page.html"
    _, _, etag = await ask(client, url)
    headers = {"If-None-Match": etag} if kind == "304" else {}
    expected = (304, b"", etag) if kind == "304" else (200, BODY, etag)
    drop_caches(site / "page.html")
    executor.jobs.clear()
    assert await ask(client, url, **headers) == expected
    assert executor.jobs == ["executor_job"]
    # The job brought names, inodes and pages back: the next is answered on the loop.
    assert await ask(client, url, **headers) == expected
    assert executor.jobs == ["executor_job"]


@needs_cached_lookups
async def test_pages_not_cached_are_read_in_the_job(
    aiohttp_client: AiohttpClient,
    executor: CountingExecutor,
    site: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[str] = []
    real_read = type(CACHE).read

    def read(self: Any, fd: int, size: int, offset: int) -> bytes | None:
        try:
            data = real_read(self, fd, size, offset)
        except WouldBlock:
            reads.append("would wait")
            raise
        reads.append("at once")
        return data

    monkeypatch.setattr(type(CACHE), "read", read)
    client = await serve_both(aiohttp_client, site)
    await ask(client, "/h/page.html")
    # The kernel may read an uncached page at once for RWF_NOWAIT when it can
    # without waiting (seen here on a virtio disk, for about half of such reads):
    # then the loop answers, rightly.  A read that would wait must take the job.
    for _ in range(8):
        drop_caches(site / "page.html", pages=True)
        for name in ("page.html", "page.html.br", "page.html.zst", "page.html.gz"):
            (site / name).exists()  # names and inodes back, the page not
        executor.jobs.clear()
        reads.clear()
        assert (await ask(client, "/h/page.html"))[:2] == (200, BODY)
        if reads == ["would wait"]:
            assert executor.jobs == ["executor_job"]
            return
        assert (reads, executor.jobs) == (["at once"], [])
    pytest.skip("this kernel read every uncached page at once for RWF_NOWAIT")


async def test_a_file_system_not_known_to_be_local_always_takes_the_job(
    aiohttp_client: AiohttpClient, executor: CountingExecutor
) -> None:
    # procfs stands for any file system off the list of local ones, such as NFS.
    async def handler(request: web.Request) -> web.StreamResponse:
        return ConditionalFileResponse(
            "/proc/self/status", use_executor="auto", precompressed=()
        )

    app = web.Application()
    app.router.add_get("/v", handler)
    client = await aiohttp_client(app)
    for _ in range(3):
        status, _, _ = await ask(client, "/v")
        assert status == 200
    assert executor.jobs == ["executor_job"] * 3


@needs_cached_lookups
async def test_a_content_hash_is_computed_in_the_job_then_reused(
    aiohttp_client: AiohttpClient, executor: CountingExecutor, site: Path
) -> None:
    client = await serve_both(aiohttp_client, site, etag="content")
    _, _, etag = await ask(client, "/h/page.html")
    assert etag.startswith('"') and len(etag) == 46
    assert executor.jobs == ["executor_job"]
    assert await ask(client, "/h/page.html", If_None_Match=etag) == (304, b"", etag)
    assert await ask(client, "/s/page.html", If_None_Match=etag) == (304, b"", etag)
    assert executor.jobs == ["executor_job"]


async def test_a_callers_etag_function_runs_in_the_job(
    aiohttp_client: AiohttpClient, executor: CountingExecutor, site: Path
) -> None:
    client = await serve_both(aiohttp_client, site, etag=lambda path, st: "mine")
    for _ in range(2):
        assert await ask(client, "/h/page.html", If_None_Match='"mine"') == (
            304,
            b"",
            '"mine"',
        )
    assert executor.jobs == ["executor_job"] * 2


@pytest.mark.parametrize(
    ("use_executor", "jobs"), [(True, 2), (False, 0)], ids=["True", "False"]
)
async def test_the_caller_can_choose_where(
    aiohttp_client: AiohttpClient,
    executor: CountingExecutor,
    site: Path,
    use_executor: bool,
    jobs: int,
) -> None:
    client = await serve_both(aiohttp_client, site, use_executor=use_executor)
    await ask(client, "/h/page.html")
    await ask(client, "/s/page.html")
    await asyncio.sleep(0)
    assert executor.jobs == ["executor_job"] * jobs


@pytest.mark.parametrize("value", ["yes", 1, None, "AUTO"])
def test_a_bad_use_executor_fails_where_it_is_given(
    value: object, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="use_executor"):
        check_use_executor(value)
    with pytest.raises(ValueError, match="use_executor"):
        ConditionalFileResponse(tmp_path, use_executor=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="use_executor"):
        add_static(web.Application(), "/s", tmp_path, use_executor=value)


@needs_cached_lookups
def test_a_file_unlinked_while_read_is_left_to_the_job(tmp_path: Path) -> None:
    # The last close of an unlinked file frees its blocks, which may wait on the
    # disk: that close belongs in the job.  The unlink is timed by wrapping the real
    # cached-only calls, so that it lands between the open and the close.
    path = tmp_path / "f.txt"
    path.write_bytes(b"content")
    age(path)

    class UnlinkingWhileRead(FileSystem):
        may_block = False

        def stat(self, name: str) -> os.stat_result:
            return CACHE.stat(name)

        def probe(
            self, name: str, near: os.stat_result | None = None
        ) -> os.stat_result | None:
            return CACHE.probe(name, near)

        def open(self, name: str, flags: int) -> int:
            return CACHE.open(name, flags)

        def read(self, fd: int, size: int, offset: int) -> bytes | None:
            path.unlink()
            return CACHE.read(fd, size, offset)

    asked = Asked("GET", Conditions(), None, moment())
    look_up(DISK, str(path), Options(), asked)  # the kernel learns the variants' misses
    with pytest.raises(WouldBlock) as raised:
        look_up(UnlinkingWhileRead(), str(path), Options(), asked)
    # Still open: handed over with the exception, for the job to close first.
    assert len(raised.value.files) == 1
    assert not raised.value.files[0].closed
    raised.value.files[0].close()
