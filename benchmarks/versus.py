"""This tree against an earlier revision in one server: python -m benchmarks.versus REV.

Two runs of ``compare`` differ by more than most changes do on a shared machine (the
bare 304 alone moved by a quarter between runs here), so a change is best measured
with both versions in one server process, their requests interleaved.  ``git archive``
brings REV's package out under another name beside this tree's; the server mounts each
as a handler, an add_static and an add_static on the loop, and the table gives each
median time per request and this tree's speed relative to REV's.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from ._common import Client, build_request, make_files, validators_of

_REPOSITORY: Final = Path(__file__).resolve().parent.parent
_PACKAGE: Final = "aiohttp_conditional"
_BEFORE: Final = "aiohttp_conditional_before"
IMPLS: Final = ("handler", "static", "static-on-loop")
SCENARIOS: Final = ("304-if-none-match", "304-if-modified-since", "200-10KiB", "206")


def export(revision: str, into: Path) -> None:
    """Write REV's package into ``into`` as the package ``_BEFORE``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, _PACKAGE],
        cwd=_REPOSITORY,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / _PACKAGE).rename(into / _BEFORE)


def serve(port: int, root: Path) -> None:
    """Serve both versions of each implementation; print "ready" once listening."""
    import importlib

    from aiohttp import web

    app = web.Application()
    for name, package in (("before", _BEFORE), ("after", _PACKAGE)):
        module = importlib.import_module(package)
        module.add_static(app, f"/{name}-static", root)
        module.add_static(app, f"/{name}-static-on-loop", root, use_executor=False)

        def handler(
            response: type[web.FileResponse],
        ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
            async def handle(request: web.Request) -> web.StreamResponse:
                return response(f"{root}/{request.match_info['name']}")

            return handle

        route = f"/{name}-handler/{{name}}"
        app.router.add_route("*", route, handler(module.ConditionalFileResponse))
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=lambda _: print("ready", flush=True),
    )


def measure(port: int, repetitions: int, batch: int) -> None:
    """Time every scenario of every implementation, both versions interleaved."""
    client = Client(port)
    print(f"{'scenario':22} {'implementation':16} {'before':>10} {'after':>10}  speed")
    for scenario in SCENARIOS:
        for impl in IMPLS:
            names = (f"before-{impl}", f"after-{impl}")
            requests = {
                name: build_request(name, scenario, validators_of(client, name))
                for name in names
            }
            times: dict[str, list[float]] = {name: [] for name in names}
            for repetition in range(repetitions):
                # Each goes first every other time: neither always follows the other.
                for name in names if repetition % 2 else names[::-1]:
                    started = time.perf_counter()
                    for _ in range(batch):
                        client.request(requests[name], has_body=True)
                    times[name].append((time.perf_counter() - started) / batch)
            before, after = (statistics.median(times[name]) * 1e6 for name in names)
            print(
                f"{scenario:22} {impl:16} {before:8.1f}us {after:8.1f}us"
                f"  {before / after:.2f}x"
            )
    client.close()


def main(argv: list[str] | None = None) -> int:
    """Export REV, start the server with both versions, print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.versus")
    parser.add_argument(
        "revision", help="the git revision to compare with, e.g. HEAD~3"
    )
    parser.add_argument("--repetitions", type=int, default=21)
    parser.add_argument("--batch", type=int, default=200, help="requests per timing")
    parser.add_argument(
        "--serve", nargs=2, metavar=("PORT", "ROOT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="versus-") as tmp:
        export(args.revision, Path(tmp))
        root = make_files(Path(tmp) / "files")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        path = os.pathsep.join(
            (tmp, str(_REPOSITORY), os.environ.get("PYTHONPATH", ""))
        )
        command = ["-m", "benchmarks.versus", args.revision, "--serve", str(port)]
        server = subprocess.Popen(
            [sys.executable, *command, str(root)],
            cwd=_REPOSITORY,
            env={**os.environ, "PYTHONPATH": path},
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                print("the server did not start", file=sys.stderr)
                return 1
            measure(port, args.repetitions, args.batch)
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
