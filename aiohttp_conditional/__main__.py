"""Serve a directory: ``python -m aiohttp_conditional [DIR] [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

from aiohttp import hdrs, web
from multidict import CIMultiDict

from ._fields import FIELD_VALUE, parse_field
from ._static import add_static

# What a cross-origin script may do and read here (the Fetch standard's CORS
# protocol): GET and HEAD, with any request field, and read every response field,
# such as ETag and Content-Range.  Browsers cache a preflight's answer this long.
_CORS_PREFLIGHT: Final = {
    "Access-Control-Allow-Methods": "GET, HEAD",
    "Access-Control-Max-Age": "7200",
}


def make_app(root: Path, *, cors: bool = False, **options: Any) -> web.Application:
    """Return an application that serves ``root`` with index.html for directories.

    With ``cors``, every answer lets scripts of any origin read it, and a CORS
    preflight (an OPTIONS request) is answered.
    """
    app = web.Application()
    add_static(app, "/", root, index="index.html", **options)
    if cors:
        app.on_response_prepare.append(_allow_any_origin)
        app.router.add_route(hdrs.METH_OPTIONS, "/{path:.*}", _preflight)
    return app


async def _allow_any_origin(request: web.Request, response: web.StreamResponse) -> None:
    # On every answer, 404s and listings too: a script told "not found" can say so,
    # where without the field it sees only a network error.
    headers = response.headers
    headers.setdefault(hdrs.ACCESS_CONTROL_ALLOW_ORIGIN, "*")
    headers.setdefault(hdrs.ACCESS_CONTROL_EXPOSE_HEADERS, "*")


async def _preflight(request: web.Request) -> web.Response:
    headers = dict(_CORS_PREFLIGHT)
    asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
    if asked and FIELD_VALUE.match(asked):
        # The names asked for: "*" would not cover Authorization.
        headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = asked
    return web.Response(status=204, headers=headers)


def _header(value: str) -> tuple[str, str]:
    try:
        return parse_field(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535)")
    return port


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m aiohttp_conditional",
        description="Serve a directory over HTTP, with correct conditional requests.",
    )
    parser.add_argument(
        "directory", nargs="?", default=".", help="what to serve (default: .)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--port", type=_port, default=8000, help="default: 8000")
    parser.add_argument(
        "--listing",
        action="store_true",
        help="list a directory that has no index.html (default: 403)",
    )
    parser.add_argument(
        "--cache-control",
        metavar="VALUE",
        default="no-cache",
        help='default: "no-cache" (browsers revalidate every time: cheap 304s, never a '
        'stale page); e.g. "max-age=60"; "" sends none',
    )
    parser.add_argument(
        "--no-validators",
        action="store_true",
        help="send no ETag or Last-Modified, so that only If-None-Match: * gets a 304",
    )
    parser.add_argument(
        "--spa",
        action="store_true",
        help="a single-page app: a page navigation to a path that names nothing gets "
        "index.html (a missing script, stylesheet or image still gets 404)",
    )
    parser.add_argument(
        "--not-found",
        metavar="FILE",
        help="answer every 404 with this file's body (a path inside DIR, e.g. 404.html)",
    )
    parser.add_argument(
        "--dotfiles",
        choices=("deny", "allow"),
        default="deny",
        help="deny (the default): 404 for .git/, .env and every name that starts with "
        "a dot, but .well-known/; allow: serve them",
    )
    parser.add_argument(
        "-H",
        "--header",
        metavar='"NAME: VALUE"',
        type=_header,
        action="append",
        default=[],
        help="add this field to the 200, 206 and 304 answers of files (repeatable), "
        'e.g. -H "X-Content-Type-Options: nosniff"',
    )
    parser.add_argument(
        "--cors",
        action="store_true",
        help="let scripts on any origin fetch and read everything served "
        "(Access-Control-Allow-Origin: *, and preflights answered)",
    )
    parser.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="follow symlinks that lead outside the directory",
    )
    args = parser.parse_args(argv)
    root = Path(args.directory)
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return 2
    if args.spa and not (root / "index.html").is_file():
        parser.error(f"--spa: {root} has no index.html")
    if args.not_found is not None and not (root / args.not_found).is_file():
        parser.error(f"--not-found: {root / args.not_found} is not a file in {root}")
    try:
        app = make_app(
            root,
            show_index=args.listing,
            follow_symlinks=args.follow_symlinks,
            dotfiles=args.dotfiles,
            fallback="index.html" if args.spa else None,
            not_found=args.not_found,
            headers=CIMultiDict(args.header) if args.header else None,
            cors=args.cors,
            cache_control=args.cache_control or None,
            etag=not args.no_validators,
            last_modified=not args.no_validators,
        )
    except ValueError as error:
        parser.error(str(error))
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
