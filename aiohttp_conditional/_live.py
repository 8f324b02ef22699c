"""Live reload: tell every open page of a route when the files under it change.

A `Reloader` belongs to one live route.  It has the route's directory watched (see
`_watch`) and serves two things below the route's prefix:

- ``__reload__/client.js``, the script every HTML page of the route is sent with
  (see `_inject`), ``reload.js`` beside this module: it reloads the page on a
  change, or swaps its stylesheets when only stylesheets changed;
- ``__reload__/events``, a Server-Sent Events stream with one ``change`` event per
  burst of changes, naming the URL paths that changed.

A stream begins with a ``hello`` event: the server's identity, the number of the
last change and how long ago it was.  A page reloaded for change N reloads again at
once if the server is past N; a page opened otherwise, if the last change came after
it began to load (later than it could tell: a reload too many, never one too few).
So no change between a page's load and its stream is lost.  A page whose stream
comes back from another server, or from this one past changes it missed, reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Final

from aiohttp import hdrs, web

from ._inject import Injection
from ._preconditions import Conditions, FileResponseState, Validators, decide
from ._watch import check_watcher, watch

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest

__all__ = ("PLACE", "Reloader")

PLACE: Final = "__reload__"  # the name below a live route's prefix
MAX_STREAMS: Final = 1000  # each is a connection and a task
MAX_PATHS: Final = 1000  # named in one event; beyond, the event says "more"
_QUEUED: Final = 64  # events kept for a stream that does not read: then it is cut
_CHECK_EVERY: Final = 1.0  # seconds between looks at whether streams' clients left
_PING_EVERY: Final = 15  # looks between comments that keep proxies from timing out
_RETRY_MS: Final = 1000  # how soon a browser reconnects
_BUSY_RETRY_MS: Final = 5000  # how soon, when every stream is taken
_PING: Final = b": ping\n\n"
# A path as a browser writes it in a URL (the URL Standard's path percent-encode
# set, and "%"), so that the script refetches the very URL the page loaded.
_URL_SAFE: Final = "/!$&'()*+,;=:@[]^|"
_CLIENT: Final = (
    resources.files("aiohttp_conditional").joinpath("reload.js").read_bytes()
)


class _Stream:
    """One open event stream: its client's request and the events queued for it."""

    def __init__(self, request: BaseRequest) -> None:
        self.request = request
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUED)

    def send(self, message: bytes | None) -> None:
        """Queue an event (None ends the stream); cut a client that reads nothing."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # Not close(): it would wait for what is unsent to drain, which never
            # comes.  A browser reconnects.
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    def gone(self) -> bool:
        """Tell whether the client has left (aiohttp does not cancel the handler)."""
        transport = self.request.transport
        return transport is None or transport.is_closing()


class Reloader:
    """Have a live route's directory watched; serve its script and its event stream.

    ``root`` is the directory, ``prefix`` the route's (``""`` at the top) and
    ``hidden`` tells, of a path below the root (``"a/b.css"``), whether the route
    hides it by its name (dotfiles), so that its changes reload nothing.
    """

    def __init__(self, root: str, prefix: str, hidden: Callable[[str], bool]) -> None:
        check_watcher()
        self._root = root
        self._hidden = hidden
        self._server = secrets.token_hex(8)
        self._streams: set[_Stream] = set()
        self._seq = 0
        self._changed_at = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self.injection = Injection(b"", "")
        self._prefix = ""
        self.move(prefix)

    def move(self, prefix: str) -> None:
        """Serve below ``prefix`` from now on (a sub-application's, once added)."""
        self._prefix = prefix
        self.injection = Injection.of(
            f'<script src="{prefix}/{PLACE}/client.js"></script>'.encode(), _CLIENT
        )

    @property
    def streams(self) -> int:
        """How many event streams are open."""
        return len(self._streams)

    async def handle(self, request: BaseRequest, name: str) -> web.StreamResponse:
        """Answer for ``name`` below ``__reload__/``: the script or the stream."""
        if name == "client.js":
            return self._client(request)
        if name == "events":
            return await self._events(request)
        raise web.HTTPNotFound()

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """Watch while the application runs (for ``app.cleanup_ctx``)."""
        await self.start()
        yield
        await self.stop()

    async def start(self) -> None:
        """Start watching: changes from now on are told."""
        if self._tasks:
            return
        self._stop = asyncio.Event()
        self._changed_at = time.monotonic()
        self._tasks = [
            asyncio.create_task(
                watch(self._root, self._counts, self.publish, self._stop)
            ),
            asyncio.create_task(self._sweep(self._stop)),
        ]
        # The watcher's first step sets its watches up, before any page is served.
        await asyncio.sleep(0)

    async def close_streams(self, app: web.Application | None = None) -> None:
        """End every event stream (for ``app.on_shutdown``: it waits for handlers)."""
        for stream in self._streams:
            stream.send(None)

    async def stop(self) -> None:
        """Stop watching."""
        tasks, self._tasks = self._tasks, []
        self._stop.set()
        for task in tasks:
            await task

    def publish(self, changed: Iterable[str]) -> None:
        """Tell every stream of one burst of changes to the files at ``changed``."""
        paths = sorted(
            {path for path in map(self.url_path, changed) if path is not None}
        )
        if not paths:
            return
        self._seq += 1
        self._changed_at = time.monotonic()
        more = len(paths) > MAX_PATHS
        data = {"seq": self._seq, "paths": paths[:MAX_PATHS], "more": more}
        message = _event("change", data, self._seq)
        for stream in self._streams:
            stream.send(message)

    def url_path(self, path: str) -> str | None:
        """Return the URL path of a file under the root; None if the route hides it."""
        relative = os.path.relpath(path, self._root)
        if relative == os.curdir:
            return f"{self._prefix}/"
        names = relative.split(os.sep)
        if names[0] == os.pardir or self._hidden("/".join(names)):
            return None
        encoded = "/".join(names).encode("utf-8", "surrogateescape")
        return f"{self._prefix}/{urllib.parse.quote(encoded, safe=_URL_SAFE)}"

    def _counts(self, path: str) -> bool:
        return self.url_path(path) is not None

    async def _sweep(self, stop: asyncio.Event) -> None:
        """End the streams of clients that left; keep the others' connections busy.

        One task for all streams, rather than a timeout in each.
        """
        looks = 0
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), _CHECK_EVERY)
            looks += 1
            ping = looks % _PING_EVERY == 0
            for stream in self._streams:
                if stream.gone():
                    stream.send(None)
                elif ping:
                    stream.send(_PING)

    def _client(self, request: BaseRequest) -> web.Response:
        tag = f'"{self.injection.mark}"'
        headers = {
            hdrs.ETAG: tag,
            hdrs.CACHE_CONTROL: "no-cache",
            hdrs.CONTENT_TYPE: "text/javascript; charset=utf-8",
        }
        conditions = Conditions(
            if_match=request.headers.get(hdrs.IF_MATCH),
            if_none_match=request.headers.get(hdrs.IF_NONE_MATCH),
        )
        state = decide(request.method, conditions, Validators(tag, None, None), 0)
        if state.state is FileResponseState.NOT_MODIFIED:
            del headers[hdrs.CONTENT_TYPE]
            return web.Response(status=304, headers=headers)
        if state.state is FileResponseState.PRECONDITION_FAILED:
            return web.Response(status=412)
        return web.Response(body=_CLIENT, headers=headers)

    async def _events(self, request: BaseRequest) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                hdrs.CONTENT_TYPE: "text/event-stream",
                hdrs.CACHE_CONTROL: "no-store",
                "X-Accel-Buffering": "no",  # nginx in front: pass each event on
            }
        )
        if request.method == hdrs.METH_HEAD:
            await response.prepare(request)
            return response
        if len(self._streams) >= MAX_STREAMS:
            # Not a 503: a browser never reconnects after an error status.  This asks
            # it to come back later.
            await response.prepare(request)
            await response.write(f"retry: {_BUSY_RETRY_MS}\n\n".encode())
            return response
        stream = _Stream(request)
        self._streams.add(stream)
        try:
            await response.prepare(request)
            age = round((time.monotonic() - self._changed_at) * 1000)
            hello = {"server": self._server, "seq": self._seq, "age": age}
            await response.write(
                f"retry: {_RETRY_MS}\n\n".encode() + _event("hello", hello)
            )
            while (message := await stream.queue.get()) is not None:
                await response.write(message)
        except ConnectionResetError:
            pass  # gone; aiohttp's own error when writing to a closed connection
        finally:
            self._streams.discard(stream)
        return response


def _event(name: str, data: object, number: int | None = None) -> bytes:
    """Return one Server-Sent Event: its name and its data as one line of JSON."""
    lines = [] if number is None else [f"id: {number}"]
    lines += [f"event: {name}", f"data: {json.dumps(data, separators=(',', ':'))}"]
    return ("\n".join(lines) + "\n\n").encode()
