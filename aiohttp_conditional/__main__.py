"""Serve a directory: ``python -m aiohttp_conditional [DIR] [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from aiohttp import web

from ._response import ConditionalFileResponse


def _resolve(root: Path, url_path: str) -> Path | None:
    """Return the file a URL path names inside ``root``, or None if it names none.

    Blocking (it follows symlinks), so it runs in the executor.  Only names are accepted:
    no empty, ``.`` or ``..`` segment, no backslash or NUL, nothing that resolves outside
    the root.
    """
    names = url_path.split("/") if url_path else []
    if any(name in ("", ".", "..") or "\\" in name or "\x00" in name for name in names):
        return None
    target = root.joinpath(*names)
    try:
        resolved = target.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root):
        return None
    if resolved.is_dir():
        return resolved / "index.html"
    return resolved


def make_app(root: Path) -> web.Application:
    """Return an application that serves the files under ``root``."""
    root = root.resolve(strict=True)

    async def handler(request: web.Request) -> web.StreamResponse:
        url_path = request.match_info["path"].rstrip("/")
        loop = asyncio.get_running_loop()
        path = await loop.run_in_executor(None, _resolve, root, url_path)
        if path is None:
            raise web.HTTPNotFound()
        return ConditionalFileResponse(path)

    app = web.Application()
    app.router.add_get("/{path:.*}", handler)
    return app


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m aiohttp_conditional",
        description="Serve a directory over HTTP with correct conditional requests.",
    )
    parser.add_argument("directory", nargs="?", default=".", help="default: current")
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="default: 8000")
    args = parser.parse_args(argv)
    root = Path(args.directory)
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return 2
    app = make_app(root)
    url = f"http://{args.host}:{args.port}/"
    try:
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            print=lambda _: print(f"Serving {root.resolve()} at {url}", flush=True),
        )
    except OSError as error:
        print(
            f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
