"""Live reload: watch a directory and tell every open page when its files change.

A `Reloader` belongs to one live route.  It watches the route's directory with
watchfiles (inotify on Linux, the native APIs elsewhere), coalesces each burst of
changes into one event, and serves two things below the route's prefix:

- ``__reload__/client.js``, the script every HTML page of the route is sent with
  (see `_inject`): it reloads the page on a change, or swaps its stylesheets when
  only stylesheets changed;
- ``__reload__/events``, a Server-Sent Events stream with one ``change`` event per
  burst, naming the URL paths that changed.

A stream begins with a ``hello`` event: the server's identity, the number of the
last change and how long ago it was.  A page reloaded for change N reloads again at
once if the server is past N; a page opened otherwise, if the last change came after
it began to load (later than it could tell: a reload too many, never one too few).
So no change between a page's load and its stream is lost.  A page whose stream
comes back from another server, or from this one past changes it missed, reloads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import hdrs, web

from ._inject import Injection
from ._listing import quote_path
from ._preconditions import Conditions, FileResponseState, Validators, decide

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest

__all__ = ("PLACE", "Reloader", "check_watcher")

_LOG: Final = logging.getLogger("aiohttp_conditional")
PLACE: Final = "__reload__"  # the name below a live route's prefix
_INSTALL: Final = "pip install 'aiohttp-conditional[live]'"
# A burst is over once nothing changed for QUIET_MS; a burst that goes on is told
# of every MAX_WAIT_MS all the same.
QUIET_MS: Final = 100
MAX_WAIT_MS: Final = 2000
MAX_STREAMS: Final = 1000  # each is a connection and a task: beyond, 503
MAX_PATHS: Final = 1000  # named in one event; beyond, the event says "more"
_QUEUED: Final = 64  # events kept for a stream that does not read: then it is let go
_CHECK_EVERY: Final = 1.0  # seconds between checks that a stream's client is there
_PING_EVERY: Final = 15  # checks between comments that keep proxies from timing out
_RETRY_MS: Final = 1000  # how soon a browser reconnects

_CLIENT: Final = """\
// aiohttp-conditional's live reload: this page reloads when the files it is served
// from change, or swaps its stylesheets when only stylesheets changed.
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || typeof EventSource === "undefined") return;
  const KEY = "aiohttp-conditional:reloaded";
  let server = null;
  let seq = -1;
  // What a page loads from the browser's cache without asking (a file sent without
  // Cache-Control is reused for a while) is fetched anew first.
  // A file that does not come within seconds is not waited for.
  const refetch = (paths) => Promise.all(paths.map((path) =>
    fetch(path, { cache: "reload", signal: AbortSignal.timeout(3000) })
      .then((r) => r.arrayBuffer()).catch(() => null)));
  const own = new URL(".", script.src).pathname;  // this script and its stream
  const loaded = () => performance.getEntriesByType("resource")
    .map((entry) => new URL(entry.name))
    .filter((url) => url.origin === location.origin && !url.pathname.startsWith(own))
    .map((url) => url.pathname + url.search);
  // The page that loads next knows which change it was reloaded for (where the
  // browser keeps a tab's storage: without it, the page's age tells).
  const store = (value) => {
    try {
      if (value === null) sessionStorage.removeItem(KEY);
      else sessionStorage.setItem(KEY, value);
    } catch (error) { /* no storage here */ }
  };
  const stored = () => {
    try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); }
    catch (error) { return null; }
  };
  const reload = (paths) => refetch(paths || loaded()).then(() => {
    store(JSON.stringify({ server, seq, page: location.href }));
    location.reload();
  });
  const swapStyles = (paths) => refetch(paths).then(() => {
    for (const link of document.querySelectorAll('link[rel~="stylesheet"][href]')) {
      const url = new URL(link.href);
      if (url.origin !== location.origin) continue;
      url.searchParams.set("livereload", String(Date.now()));
      const fresh = link.cloneNode();
      fresh.href = url.href;
      const done = () => link.remove();
      fresh.addEventListener("load", done, { once: true });
      fresh.addEventListener("error", done, { once: true });
      link.after(fresh);
    }
  });
  // Whether a change was made after this page began to load, which it may not show.
  const missed = (hello) => {
    const before = stored();
    store(null);
    const [navigation] = performance.getEntriesByType("navigation");
    if (before && before.server === hello.server && before.page === location.href
        && navigation && navigation.type === "reload") {
      return hello.seq !== before.seq;
    }
    return hello.age < performance.now();
  };
  const source = new EventSource(new URL("events", script.src));
  source.addEventListener("hello", (event) => {
    const hello = JSON.parse(event.data);
    const first = server === null;
    const stale = first ? missed(hello) : hello.server !== server || hello.seq !== seq;
    server = hello.server;
    seq = hello.seq;
    // On a server's return: another server, or this one past changes missed meanwhile.
    if (stale) reload(null);
  });
  source.addEventListener("change", (event) => {
    const change = JSON.parse(event.data);
    seq = change.seq;
    const paths = change.paths;
    if (!change.more && paths.length && paths.every((p) => p.endsWith(".css"))) {
      swapStyles(paths);
    } else {
      reload(change.more ? null : paths);
    }
  });
})();
"""
_CLIENT_BYTES: Final = _CLIENT.encode()


def check_watcher() -> None:
    """Raise ImportError, saying what to install, where watchfiles is missing."""
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        raise ImportError(f"live reload needs watchfiles: {_INSTALL}") from None


class _Stream:
    """One open event stream: its client's request and the events queued for it."""

    def __init__(self, request: BaseRequest) -> None:
        self.request = request
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUED)

    def send(self, message: bytes | None) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # A client that reads no events is let go; a browser comes back.
            transport = self.request.transport
            if transport is not None:
                transport.close()


class Reloader:
    """Watch a live route's directory and serve its script and its event stream.

    ``root`` is the directory, ``prefix`` the route's (``""`` at the top) and
    ``hidden`` tells, of a path below the root (``"a/b.css"``), whether the route
    would refuse it, so that its changes reload nothing.
    """

    def __init__(self, root: str, prefix: str, hidden: Callable[[str], bool]) -> None:
        check_watcher()
        self._root = root
        self._prefix = prefix
        self._hidden = hidden
        here = f"{prefix}/{PLACE}"
        self.injection = Injection.of(
            f'<script src="{here}/client.js"></script>'.encode(), _CLIENT_BYTES
        )
        self._client_tag = f'"{self.injection.mark}"'
        self._server = secrets.token_hex(8)
        self._streams: set[_Stream] = set()
        self._seq = 0
        self._changed_at = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

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
        """Start watching; changes from now on are told."""
        if self._task is not None:
            return
        self._stop = asyncio.Event()
        self._changed_at = time.monotonic()
        self._task = asyncio.create_task(self._watch(self._stop))
        # Its first step sets the watches up, before any page is served.
        await asyncio.sleep(0)

    async def close_streams(self, app: web.Application | None = None) -> None:
        """End every event stream (for ``app.on_shutdown``: it waits for handlers)."""
        for stream in self._streams:
            stream.send(None)

    async def stop(self) -> None:
        """Stop watching."""
        task, self._task = self._task, None
        if task is None:
            return
        assert self._stop is not None
        self._stop.set()
        await task

    @property
    def streams(self) -> int:
        """How many event streams are open."""
        return len(self._streams)

    async def _watch(self, stop: asyncio.Event) -> None:
        from watchfiles import DefaultFilter, awatch

        default = DefaultFilter()

        def wanted(change: Any, path: str) -> bool:
            return default(change, path) and self._url_path(path) is not None

        try:
            async for changes in awatch(
                self._root,
                watch_filter=wanted,
                debounce=MAX_WAIT_MS,
                step=QUIET_MS,
                stop_event=stop,
                ignore_permission_denied=True,
            ):
                self.publish(path for _, path in changes)
        except Exception:
            # Out of inotify watches, or the directory gone: files are still served,
            # pages are no longer reloaded.  Said once, in the server's log.
            _LOG.exception("live reload stopped watching %s", self._root)

    def publish(self, changed: Iterable[str]) -> None:
        """Tell every stream of one burst of changes to the files at ``changed``."""
        paths = sorted(
            {path for path in map(self._url_path, changed) if path is not None}
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

    def _url_path(self, path: str) -> str | None:
        """Return the URL path of a changed file, or None if the route hides it."""
        relative = os.path.relpath(path, self._root)
        if relative == os.curdir:
            return f"{self._prefix}/"
        names = relative.split(os.sep)
        if names[0] == os.pardir or self._hidden("/".join(names)):
            return None
        return f"{self._prefix}/{quote_path('/'.join(names))}"

    def _client(self, request: BaseRequest) -> web.Response:
        headers = {
            hdrs.ETAG: self._client_tag,
            hdrs.CACHE_CONTROL: "no-cache",
            hdrs.CONTENT_TYPE: "text/javascript; charset=utf-8",
        }
        conditions = Conditions(
            if_match=request.headers.get(hdrs.IF_MATCH),
            if_none_match=request.headers.get(hdrs.IF_NONE_MATCH),
        )
        validators = Validators(self._client_tag, None, None)
        state = decide(request.method, conditions, validators, len(_CLIENT_BYTES))
        if state.state is FileResponseState.NOT_MODIFIED:
            del headers[hdrs.CONTENT_TYPE]
            return web.Response(status=304, headers=headers)
        if state.state is FileResponseState.PRECONDITION_FAILED:
            return web.Response(status=412)
        return web.Response(body=_CLIENT_BYTES, headers=headers)

    async def _events(self, request: BaseRequest) -> web.StreamResponse:
        if len(self._streams) >= MAX_STREAMS:
            raise web.HTTPServiceUnavailable(headers={hdrs.RETRY_AFTER: "5"})
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
        stream = _Stream(request)
        self._streams.add(stream)
        try:
            await response.prepare(request)
            age = round((time.monotonic() - self._changed_at) * 1000)
            hello = {"server": self._server, "seq": self._seq, "age": age}
            await response.write(
                f"retry: {_RETRY_MS}\n\n".encode() + _event("hello", hello)
            )
            await self._relay(request, response, stream)
        except ConnectionResetError:
            pass  # gone; aiohttp's own error when writing to a closed connection
        finally:
            self._streams.discard(stream)
        return response

    async def _relay(
        self, request: BaseRequest, response: web.StreamResponse, stream: _Stream
    ) -> None:
        """Write the stream's events until it ends or its client goes."""
        checks = 0
        while True:
            try:
                message = await asyncio.wait_for(stream.queue.get(), _CHECK_EVERY)
            except asyncio.TimeoutError:
                # aiohttp does not cancel a handler whose client left: look.
                transport = request.transport
                if transport is None or transport.is_closing():
                    return
                checks += 1
                if checks % _PING_EVERY == 0:
                    await response.write(b": ping\n\n")
                continue
            if message is None:
                return
            await response.write(message)


def _event(name: str, data: object, number: int | None = None) -> bytes:
    """Return one Server-Sent Event: its name and its data as one line of JSON."""
    lines = [] if number is None else [f"id: {number}"]
    lines += [f"event: {name}", f"data: {json.dumps(data, separators=(',', ':'))}"]
    return ("\n".join(lines) + "\n\n").encode()
