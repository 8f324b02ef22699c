"""The command line: ``python -m aiohttp_conditional [DIR]`` serves a directory."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import errno
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from multidict import CIMultiDict
from yarl import URL

from ._fields import FIELD_VALUE, parse_field
from ._platform import LINUX
from ._static import add_static
from ._watch import check_watcher

__all__ = ("main", "make_app", "prog_name")

PROG: Final = "python -m aiohttp_conditional"
# What a cross-origin script may do and read here (the Fetch standard's CORS
# protocol): GET and HEAD, with any request field, and read every response field,
# such as ETag and Content-Range.  Browsers cache a preflight's answer this long.
_CORS_PREFLIGHT: Final[dict[str, str]] = {
    hdrs.ALLOW: "GET, HEAD, OPTIONS",  # RFC 9110 §9.3.7, for a plain OPTIONS too
    hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, HEAD",
    hdrs.ACCESS_CONTROL_MAX_AGE: "7200",
}
# A request line is the client's: its control characters are shown escaped, so that
# no request can write a line of its own into the log (as http.server escapes them).
_CONTROL: Final = {
    code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))
}
_STARTED_WITHIN: Final = 30.0  # seconds for every worker to be listening
_PR_SET_PDEATHSIG: Final = 1  # prctl(2)


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
    headers: dict[str, str] = dict(_CORS_PREFLIGHT)
    asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
    if asked and FIELD_VALUE.match(asked):
        # The names asked for: "*" would not cover Authorization.
        headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = asked
    if request.headers.get("Access-Control-Request-Private-Network") == "true":
        # Chromium's Private Network Access: a public page may fetch from this
        # server on the loopback only if it says so.
        headers["Access-Control-Allow-Private-Network"] = "true"
    return web.Response(status=204, headers=headers)


class _AccessLog(AbstractAccessLogger):
    """One line a request, as ``python -m http.server`` writes them, with the size."""

    def log(
        self, request: BaseRequest, response: web.StreamResponse, time: float
    ) -> None:
        version = request.version
        line = (
            f"{request.method} {request.raw_path} HTTP/{version.major}.{version.minor}"
        )
        self.logger.info(
            '%s - - [%s] "%s" %d %s',
            request.remote or "-",
            _now(),
            line.translate(_CONTROL),
            response.status,
            # The body's size, as its header gives it: a HEAD's too.
            "-" if response.content_length is None else response.content_length,
        )


def _now() -> str:
    return time.strftime("%d/%b/%Y %H:%M:%S")


def _port(value: str) -> int:
    # ASCII digits only: int() would also take " 80" and other scripts' digits.
    if not re.fullmatch(r"[0-9]{1,5}", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number")
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535)")
    return port


def _host(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("give an address, e.g. 127.0.0.1 or 0.0.0.0")
    return value


def _workers(value: str) -> int:
    count = int(value) if re.fullmatch(r"[0-9]{1,4}", value) else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of processes")
    return count


def _header(value: str) -> tuple[str, str]:
    try:
        return parse_field(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=prog_name(),
        description="Serve a directory over HTTP, with correct conditional requests.",
        epilog=f"{prog_name()} compress DIR writes DIR's precompressed variants (.br, "
        f".zst, .gz) for it to send: see {prog_name()} compress --help.",
    )
    parser.add_argument(
        "directory", nargs="?", help="what to serve (default: the current directory)"
    )
    parser.add_argument(
        "-d", "--directory", dest="directory_option", metavar="DIR",
        help="what to serve, as http.server takes it",
    )  # fmt: skip
    parser.add_argument(
        "-b", "--bind", "--host", dest="host", default="127.0.0.1", metavar="ADDRESS",
        type=_host,
        help="the address to listen on (default: 127.0.0.1; 0.0.0.0 for every IPv4 "
        "address, :: for every IPv6 one)",
    )  # fmt: skip
    parser.add_argument(
        "-p", "--port", type=_port, default=8000,
        help="default: 8000; 0 picks a free one",
    )  # fmt: skip
    parser.add_argument(
        "-q", "--quiet", action="store_true",
        help="no access log (one line a request on standard error)",
    )  # fmt: skip
    parser.add_argument(
        "--version", action="version",
        version=f"%(prog)s {__version__} (aiohttp {aiohttp.__version__})",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=_workers, default=1, metavar="N",
        help="serve from N processes sharing the port (default: 1); on a machine "
        "with several cores, as many as it has",
    )  # fmt: skip
    parser.add_argument(
        "--tls-cert", metavar="FILE",
        help="serve HTTPS with this PEM certificate (chain); its key in --tls-key or "
        "in the same file",
    )  # fmt: skip
    parser.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM key")
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
        "--live",
        action="store_true",
        help="for development: reload every open page when a file under DIR changes "
        "(needs the [live] extra)",
    )
    parser.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="follow symlinks that lead outside the directory",
    )
    return parser


def prog_name() -> str:
    """Name the command as it was run: the console script, or python -m."""
    if os.path.basename(sys.argv[0]) == "aiohttp-conditional":
        return "aiohttp-conditional"
    return PROG


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until interrupted; return the exit status.

    ``compress DIR`` writes DIR's precompressed variants instead (a directory named
    ``compress`` is served as ``./compress``).
    """
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["compress"]:
        from ._compress import main as compress

        return compress(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    root = _root(parser, args)
    if args.spa and not (root / "index.html").is_file():
        parser.error(f"--spa: {root} has no index.html")
    if args.not_found is not None and not (root / args.not_found).is_file():
        parser.error(f"--not-found: {root / args.not_found} is not a file in {root}")
    if args.cors and any(
        name.lower().startswith("access-control-") for name, _ in args.header
    ):
        parser.error("--cors sets the Access-Control-* fields: give -H or --cors")
    if args.workers > 1 and (not LINUX or not hasattr(socket, "SO_REUSEPORT")):
        # Elsewhere SO_REUSEPORT lets sockets share a port but not its connections:
        # one process would take them all (macOS, the BSDs), or there is none.
        parser.error(
            "--workers: only Linux spreads a port's connections over processes"
        )
    if args.live and args.workers > 1:
        # A page and its event stream would reach processes that watch apart.
        parser.error("--live: serve from one process (no --workers)")
    if args.live:
        try:
            check_watcher()
        except ImportError as error:
            parser.error(f"--live: {error}")
    if args.tls_key is not None and args.tls_cert is None:
        parser.error("--tls-key: give the certificate too, with --tls-cert")
    tls = None
    if args.tls_cert is not None:
        try:
            tls = _tls(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError, _Encrypted) as error:
            parser.error(f"--tls-cert/--tls-key: {_tls_problem(error, args)}")
    try:
        make_app(root, **_options(args))  # a bad option fails here, once
    except ValueError as error:
        parser.error(str(error))
    if not args.quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access = logging.getLogger("aiohttp_conditional.access")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    try:
        if args.workers == 1:
            if args.port == 0:
                # One port for every address a name has (localhost: 127.0.0.1, ::1).
                with _reserved_port(args.host, 0, share=False) as port:
                    args.port = port
            return _serve_here(root, args, tls, None, reuse_port=False)
        return _serve_in_workers(root, args, tls)
    except OSError as error:
        print(
            f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr
        )
        return 1


def _root(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    given = [value for value in (args.directory, args.directory_option) if value]
    if len(given) == 2 and Path(given[0]) != Path(given[1]):
        parser.error(f"two directories to serve: {given[0]} and {given[1]}")
    root = Path(given[0] if given else ".")
    if not root.is_dir():
        if args.directory is not None and args.directory.isdigit():
            parser.error(
                f"{args.directory} is not a directory; "
                f"did you mean --port {args.directory}?"
            )
        print(f"error: {root} is not a directory", file=sys.stderr)
        sys.exit(2)
    return root


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "show_index": args.listing,
        "follow_symlinks": args.follow_symlinks,
        "dotfiles": args.dotfiles,
        "fallback": "index.html" if args.spa else None,
        "not_found": args.not_found,
        "headers": CIMultiDict(args.header) if args.header else None,
        "cors": args.cors,
        "cache_control": args.cache_control or None,
        "etag": not args.no_validators,
        "last_modified": not args.no_validators,
        "live": args.live,
    }


class _Encrypted(Exception):
    """The key asks for a passphrase, which a server started unattended has not."""


def _no_passphrase() -> str:
    raise _Encrypted


def _tls(cert: str, key: str | None) -> ssl.SSLContext:
    """Load the certificate and key once, in the process that starts the server.

    Never at a prompt: OpenSSL would ask for an encrypted key's passphrase on the
    terminal, once in each process, the prompts of several workers overlapping.
    """
    for path in (cert, key):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key, password=_no_passphrase)
    return context


def _tls_problem(
    error: OSError | ssl.SSLError | _Encrypted, args: argparse.Namespace
) -> str:
    files = (
        args.tls_cert if args.tls_key is None else f"{args.tls_cert} and {args.tls_key}"
    )
    if isinstance(error, _Encrypted):
        return (
            f"{args.tls_key or args.tls_cert}: the key is encrypted; give one without a "
            "passphrase (openssl pkey -in KEY -out PLAIN)"
        )
    if isinstance(error, ssl.SSLError):
        if "KEY_VALUES_MISMATCH" in str(error):
            return f"{files}: the key is not the certificate's"
        if args.tls_key is None:
            return (
                f"{files}: no certificate and key in it (give the key with --tls-key)"
            )
        return f"{files}: not a PEM certificate and key ({error.reason or error})"
    return f"{error.filename}: {error.strerror}"


def _url(args: argparse.Namespace, port: int) -> str:
    scheme = "https" if args.tls_cert else "http"
    return str(URL.build(scheme=scheme, host=args.host, port=port, path="/"))


def _serve_here(
    root: Path,
    args: argparse.Namespace,
    tls: ssl.SSLContext | None,
    started: Callable[[int], None] | None,
    *,
    reuse_port: bool,
) -> int:
    """Serve from this process until SIGINT or SIGTERM; return the exit status."""

    def announce(port: int) -> None:
        live = ", reloading pages as files change" if args.live else ""
        print(
            f"Serving {root.resolve()} at {_url(args, port)}{live} "
            "(press Ctrl+C to quit)",
            flush=True,
        )

    asyncio.run(_serve(root, args, tls, started or announce, reuse_port))
    return 0


async def _serve(
    root: Path,
    args: argparse.Namespace,
    tls: ssl.SSLContext | None,
    started: Callable[[int], None],
    reuse_port: bool,
) -> None:
    # Made here, in the process that serves: each worker has caches of its own.
    app = make_app(root, **_options(args))
    runner = web.AppRunner(
        app,
        access_log=None
        if args.quiet
        else logging.getLogger("aiohttp_conditional.access"),
        access_log_class=_AccessLog,
        # Ctrl+C stops it soon, as it stops http.server, though a download is on.
        shutdown_timeout=3.0,
    )
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, args.host, args.port, ssl_context=tls, reuse_port=reuse_port
        )
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Where the loop cannot (Windows), Ctrl+C ends asyncio.run instead.
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        started(runner.addresses[0][1])
        await stop.wait()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # A second signal while connections close (a worker gets Ctrl+C's SIGINT
            # and its parent's SIGTERM) must not reach the loop's handler as the
            # loop closes; the first one said all there is to say.
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)
    finally:
        await runner.cleanup()


def _serve_in_workers(
    root: Path, args: argparse.Namespace, tls: ssl.SSLContext | None
) -> int:
    """Serve from ``args.workers`` processes, each listening on the same port."""
    context = multiprocessing.get_context("fork")
    parent = os.getpid()
    with _reserved_port(args.host, args.port, share=True) as port:
        args.port = port
        reader, writer = context.Pipe(duplex=False)
        workers = [
            context.Process(
                target=_worker, args=(root, args, tls, writer, parent), daemon=True
            )
            for _ in range(args.workers)
        ]
        for worker in workers:
            worker.start()
        writer.close()
        problem = None
        for _ in workers:
            if not reader.poll(_STARTED_WITHIN):
                problem = "the workers did not start"
                break
            try:
                message = reader.recv()
            except EOFError:
                problem = "a worker stopped before it could listen"
                break
            if message is not None:
                problem = message
                break
    if problem is not None:
        _stop(workers)
        print(f"error: {problem}", file=sys.stderr)
        return 1
    print(
        f"Serving {root.resolve()} at {_url(args, port)} from {len(workers)} "
        "processes (press Ctrl+C to quit)",
        flush=True,
    )
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        _stop(workers)

    # Ctrl+C reaches every process of the terminal's group; SIGTERM only this one.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    running = {worker.sentinel: worker for worker in workers}
    while running:
        for sentinel in multiprocessing.connection.wait(list(running)):
            worker = running.pop(sentinel)  # type: ignore[arg-type]
            worker.join()
            if not stopping:
                # One gone on its own (a crash, kill -9): say so, and stop the rest
                # rather than serve on with fewer than were asked for.
                print(
                    f"error: a worker stopped (exit status {worker.exitcode}); "
                    "stopping the others",
                    file=sys.stderr,
                )
                stopping = True
                _stop(workers)
    return 0 if all(worker.exitcode == 0 for worker in workers) else 1


def _worker(
    root: Path,
    args: argparse.Namespace,
    tls: ssl.SSLContext | None,
    ready: Connection,
    parent: int,
) -> None:
    """One worker process: serve, saying once whether it listens (None) or why not."""
    # The parent's handlers were inherited by fork; the event loop sets its own.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _end_with(parent)
    try:
        _serve_here(root, args, tls, lambda port: ready.send(None), reuse_port=True)
    except OSError as error:
        ready.send(f"cannot listen on {args.host}:{args.port}: {error}")
        sys.exit(1)
    finally:
        ready.close()


def _end_with(parent: int) -> None:
    """Have the kernel send SIGTERM to this worker when its parent ends, even by kill -9.

    An orphaned worker would go on answering on the port, beside whatever server
    takes the port next.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(1)  # it ended before the request was made


def _stop(workers: Sequence[multiprocessing.process.BaseProcess]) -> None:
    for worker in workers:
        if worker.is_alive():
            worker.terminate()  # SIGTERM: each closes its connections and exits


@contextmanager
def _reserved_port(host: str, port: int, *, share: bool) -> Iterator[int]:
    """Hold the port to listen on; with 0, pick a free one.

    First it is bound alone, which fails if any socket has it, one with
    SO_REUSEPORT included: so a second server started on the same port is refused
    rather than handed half of the connections.  With ``share``, the port is then
    held by a socket with SO_REUSEPORT that never listens (so it takes no
    connection), for the workers to bind beside.
    """
    family, kind, protocol, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, protocol) as alone:
        # As asyncio binds (POSIX): past connections of an earlier server lingering
        # in TIME_WAIT do not hold the port; a socket that listens still does.
        _reuse_address(alone)
        alone.bind(address)
        port = alone.getsockname()[1]
    if not share:
        yield port
        return
    with socket.socket(family, kind, protocol) as probe:
        _reuse_address(probe)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind((address[0], port, *address[2:]))
        yield port


def _reuse_address(sock: socket.socket) -> None:
    if os.name == "posix":  # elsewhere SO_REUSEADDR lets a port be taken over
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
