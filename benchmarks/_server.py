"""The benchmark server: every implementation side by side in one app.

Run as ``python _server.py PORT ROOT``; prints ``ready`` once listening.  It runs in a
process of its own, so that the client's work never competes with it for the GIL.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

from aiohttp_conditional import ConditionalFileResponse, add_static


def make_app(root: Path) -> web.Application:
    """Mount each implementation under its own prefix, plus the no-I/O floor."""
    # Handlers join strings: a pathlib join would cost more than some answers.
    prefix = f"{root}/"

    async def upstream(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(prefix + request.match_info["name"])

    async def ours(request: web.Request) -> web.StreamResponse:
        return ConditionalFileResponse(prefix + request.match_info["name"])

    async def ours_in_executor(request: web.Request) -> web.StreamResponse:
        path = prefix + request.match_info["name"]
        return ConditionalFileResponse(path, use_executor=True)

    async def floor(request: web.Request) -> web.StreamResponse:
        # The least any file response can cost inside aiohttp: no disk, no validators.
        return web.Response(status=304)

    app = web.Application()
    app.router.add_route("*", "/upstream-handler/{name}", upstream)
    app.router.add_static("/upstream-static", root)
    app.router.add_route("*", "/ours-handler/{name}", ours)
    add_static(app, "/ours-static", root)
    app.router.add_route("*", "/ours-handler-executor/{name}", ours_in_executor)
    add_static(app, "/ours-static-executor", root, use_executor=True)
    add_static(app, "/ours-static-content-etag", root, etag="content")
    app.router.add_route("*", "/floor/{name}", floor)
    return app


def main() -> None:
    port, root = int(sys.argv[1]), Path(sys.argv[2])
    web.run_app(
        make_app(root),
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=lambda _: print("ready", flush=True),
    )


if __name__ == "__main__":
    main()
