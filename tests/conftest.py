"""Shared fixtures: the parity fixture, app builders and honest counters of real work."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import hashlib
import mmap
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from aiohttp import web
from aiohttp.pytest_plugin import AiohttpClient
from aiohttp.test_utils import TestClient
from hypothesis import settings

from aiohttp_conditional import ConditionalFileResponse, ConditionalStaticResource
from aiohttp_conditional._clock import fs_now_ns
from aiohttp_conditional._kernel import CACHE, WouldBlock
from aiohttp_conditional._lookup import Options
from aiohttp_conditional._preconditions import stable_from_ns

# A shared CI machine can stall any example past hypothesis's 200 ms deadline; a slow
# example is not a wrong answer, so only wrong answers fail.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")

ResponseClass = type[web.FileResponse]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--use-executor",
        choices=("auto", "true", "false"),
        default="auto",
        help="the default use_executor of our responses and routes in this run",
    )
    parser.addoption(
        "--with-options",
        action="store_true",
        help="turn on, by default, the options that add to answers without changing "
        "what they answer: digests, header fields, text_charset, clean URLs",
    )


@pytest.fixture(autouse=True, scope="session")
def default_use_executor(pytestconfig: pytest.Config) -> Iterator[object]:
    """Give every response and route made without use_executor this run's mode.

    CI runs the tests of the promise once in each mode; a test that is about one
    mode sets it explicitly.
    """
    value = {"auto": "auto", "true": True, "false": False}[
        pytestconfig.getoption("use_executor")
    ]
    defaults = ConditionalFileResponse.__init__.__kwdefaults__
    assert defaults is not None
    saved = defaults["use_executor"]
    defaults["use_executor"] = value
    yield value
    defaults["use_executor"] = saved


# What --with-options turns on: each adds to an answer, none may change whether it is a
# 200, 206, 304, 412 or 404, nor a byte of a body.  The fallback page, the 404 page and
# the clean-URL extension are named but not there: what the route works out for them
# (page navigations, Vary: Accept, the extra lookups) runs on every missing path, and
# no answer changes; with those files there, answers would (their tests are their own).
# The route's text_charset changes Content-Type, which the route's tests read as a
# media type; the response's is left off, since its tests compare the whole field
# with upstream's.
WITH_OPTIONS: dict[str, dict[str, Any]] = {
    "response": {"digest": True, "disposition": "inline"},
    "route": {
        "headers": {"X-Content-Type-Options": "nosniff"},
        "text_charset": "utf-8",
        "extensions": ("never-there",),
        "not_found": "never-there.html",
        "fallback": "never-there.html",
    },
}


async def _read_checking_digest(self: aiohttp.ClientResponse) -> bytes:
    """Read a response's body; fail where its Repr-Digest is not that of the body.

    Checked where the body is the whole representation as sent: a 200 of a GET
    without a content-coding (which the client may have decoded).
    """
    body = await _READ(self)
    digest = self.headers.get("Repr-Digest")
    if (
        digest is not None
        and self.status == 200
        and self.method == "GET"
        and "Content-Encoding" not in self.headers
    ):
        expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert digest == f"sha-256=:{expected}:", "a Repr-Digest that is not the body's"
    return body


_READ: Final = aiohttp.ClientResponse.read


@pytest.fixture(autouse=True, scope="session")
def with_options(pytestconfig: pytest.Config) -> Iterator[bool]:
    """With --with-options, make every response and route with the options on.

    CI runs the tests of the promise so once: they must pass with them as without.
    The route's digest comes from the response options it is given, so the default
    of `Options.of` is the one to change.
    """
    if not pytestconfig.getoption("with_options"):
        yield False
        return
    saved = []
    for function, options in (
        (ConditionalFileResponse.__init__, WITH_OPTIONS["response"]),
        (ConditionalStaticResource.__init__, WITH_OPTIONS["route"]),
    ):
        defaults = function.__kwdefaults__
        assert defaults is not None
        saved.append((defaults, dict(defaults)))
        defaults.update(options)
    of = Options.of.__func__  # type: ignore[attr-defined]
    saved_of = of.__defaults__
    of.__defaults__ = (*saved_of[:-1], True)  # digest
    read = aiohttp.ClientResponse.read
    aiohttp.ClientResponse.read = _read_checking_digest  # type: ignore[method-assign]
    yield True
    aiohttp.ClientResponse.read = read  # type: ignore[method-assign]
    of.__defaults__ = saved_of
    for defaults, old in saved:
        defaults.clear()
        defaults.update(old)


Client = TestClient[web.Request, web.Application]


@pytest.fixture(
    params=[web.FileResponse, ConditionalFileResponse], ids=["upstream", "conditional"]
)
def impl(request: pytest.FixtureRequest) -> ResponseClass:
    """Each test that takes this runs against aiohttp's FileResponse and ours."""
    cls: ResponseClass = request.param
    return cls


def upstream_differs(reason: str) -> pytest.MarkDecorator:
    """Parametrize ``impl`` for a test where upstream is known to be wrong."""
    return pytest.mark.parametrize(
        "impl",
        [
            pytest.param(
                web.FileResponse, marks=pytest.mark.xfail(reason=reason), id="upstream"
            ),
            pytest.param(ConditionalFileResponse, id="conditional"),
        ],
    )


@pytest.fixture
def serve(
    aiohttp_client: AiohttpClient,
) -> Callable[..., Any]:
    """Return an async function that serves one file at ``/f`` (any method)."""

    async def start(cls: ResponseClass, path: Path, **kwargs: Any) -> Client:
        async def handler(request: web.Request) -> web.StreamResponse:
            return cls(path, **kwargs)

        app = web.Application()
        app.router.add_route("*", "/f", handler)
        return await aiohttp_client(app)

    return start


@contextlib.contextmanager
def serve_in_thread(app: web.Application) -> Iterator[int]:
    """Serve an app from a thread of its own, for synchronous tests; yield its port."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port: int = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def raw_request(port: int, target: str) -> tuple[int, bytes]:
    """Send a GET whose request line is exactly as written; return status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def age(*paths: Path) -> None:
    """Sleep until every path has stayed unchanged long enough to get validators.

    The directories above each path, up to pytest's own temporary tree, count too, as
    they do on the static route.
    """
    above = [
        parent
        for path in paths
        for parent in path.parents
        if any(part.startswith("pytest-of-") for part in parent.parts)
        and not parent.name.startswith("pytest-of-")
    ]
    stable = max(
        stable_from_ns(st.st_mtime_ns, st.st_ctime_ns)
        for st in (p.lstat() for p in (*paths, *above))
    )
    while (wait := stable - fs_now_ns()) > 0:
        time.sleep(wait / 1e9 + 0.005)


def drop_caches(*on: Path, pages: bool = False) -> None:
    """Have the kernel forget its cached names, inodes and pages, as after a reboot.

    Only root may, and a file system held in memory (tmpfs) keeps everything: the
    test is skipped where ``on`` lies on one.  Dirty pages are written first, or the
    kernel would keep them.  A drop does not always take everything at once (what is
    in use at that moment stays), so it is repeated until each path's name is out
    of the cache, and with ``pages`` its first page too (which brings its name back).
    """
    for _ in range(5):
        os.sync()
        try:
            with open("/proc/sys/vm/drop_caches", "w") as control:
                control.write("3")
        except OSError as error:
            pytest.skip(f"the kernel's caches cannot be dropped here: {error}")
        if all(_forgotten(path, pages) for path in on):
            return
    pytest.skip(f"the kernel kept {', '.join(map(str, on))} (a file system in memory?)")


def _forgotten(path: Path, pages: bool) -> bool:
    try:
        CACHE.stat(str(path))
    except WouldBlock:
        pass
    else:
        return False
    return not pages or not first_page_cached(path)


def first_page_cached(path: Path) -> bool:
    """Ask mincore(2) whether a file's first page is in the page cache.

    Asked of a mapping, which reads nothing: a read, even one with RWF_NOWAIT that
    fails, may start the kernel reading ahead, and so cache what it asks about.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.c_long,
    )  # fmt: skip
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    size = mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            vector = ctypes.create_string_buffer(1)
            if libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            return bool(vector.raw[0] & 1)
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


def open_descriptors(path: Path) -> int:
    """Count this process's open descriptors of a file, as the kernel lists them."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


class CountingExecutor(ThreadPoolExecutor):
    """A real thread pool that records the name of every job submitted to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.jobs: list[str] = []

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        self.jobs.append(getattr(fn, "__name__", repr(fn)))
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
async def executor() -> AsyncIterator[CountingExecutor]:
    """Make a counting pool the running loop's default executor."""
    pool = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(pool)
    yield pool


@pytest.fixture
async def unprivileged_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[None]:
    """Have the loop's executor threads touch files as an ordinary user would.

    Root reads any file whatever its mode, so as root the worker threads take the
    file-system identity of nobody (setfsuid is per thread on Linux); the kernel then
    refuses them as it would refuse any unprivileged server.  The event loop's thread
    stays root, so our responses and routes made meanwhile do all file work in the
    executor.
    """
    if os.geteuid() != 0:
        yield
        return
    defaults = ConditionalFileResponse.__init__.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "use_executor", True)
    libc = ctypes.CDLL(None, use_errno=True)

    def drop_file_privileges() -> None:
        libc.setfsgid(65534)
        libc.setfsuid(65534)

    pool = ThreadPoolExecutor(max_workers=2, initializer=drop_file_privileges)
    asyncio.get_running_loop().set_default_executor(pool)
    yield


# Python's audit hooks see every open() and os.open() in the process, so counting them is
# counting real opens; a hook cannot be removed, so it only records while a test asks.
_OPEN_WATCHERS: list[tuple[str, list[str]]] = []
_LIST_WATCHERS: list[tuple[str, list[str]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open":
        watchers = _OPEN_WATCHERS
    elif event == "os.listdir":
        watchers = _LIST_WATCHERS
    else:
        return
    if watchers and isinstance(args[0], (str, bytes, Path)):
        name = os.fsdecode(args[0])
        for prefix, seen in watchers:
            if name.startswith(prefix):
                seen.append(name)


sys.addaudithook(_audit)


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[list[str]]:
    """Record the path of every file opened under ``tmp_path`` during the test."""
    watch: tuple[str, list[str]] = (str(tmp_path), [])
    _OPEN_WATCHERS.append(watch)
    yield watch[1]
    _OPEN_WATCHERS.remove(watch)


@pytest.fixture
def listed(tmp_path: Path) -> Iterator[list[str]]:
    """Record the path of every directory listed under ``tmp_path`` during the test."""
    watch: tuple[str, list[str]] = (str(tmp_path), [])
    _LIST_WATCHERS.append(watch)
    yield watch[1]
    _LIST_WATCHERS.remove(watch)
