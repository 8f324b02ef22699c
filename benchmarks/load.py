"""Load the CLI server with many keep-alive connections: ``python -m benchmarks.load``.

Starts ``python -m aiohttp_conditional`` on a directory of its own, opens
``--connections`` connections at once (loopback only) and has each send
``--requests`` requests in turn, mixing a 200, a 304 and a 206; every status and body is
checked.  Reports the throughput, the errors, and the server's memory (resident, and
the objects and blocks Python holds) and open descriptors before and after each round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

_REPOSITORY = Path(__file__).resolve().parent.parent
_LENGTH = re.compile(rb"\r\ncontent-length: *([0-9]+)", re.IGNORECASE)
_ETAG = re.compile(rb"\r\netag: *([^\r]*)", re.IGNORECASE)


@dataclass
class Report:
    """What one round of load found."""

    requests: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class CliServer:
    """``python -m aiohttp_conditional ROOT *options`` in a process of its own.

    It runs under ``benchmarks._probe``, which adds nothing but a SIGUSR1 handler
    that reports the heap (see :meth:`heap`).
    """

    def __init__(self, root: Path, *options: str, port: int = 0) -> None:
        self.port = port
        if not port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        self._reports = Path(tempfile.mkdtemp(prefix="cli-server-")) / "heap"
        self._reports.touch()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks._probe",
                str(self._reports),
                str(root.resolve()),
                "--port",
                str(self.port),
                "--quiet",  # nobody reads its stderr until it stops
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=_REPOSITORY,
        )
        assert self.process.stdout is not None
        if not self.process.stdout.readline().startswith("Serving "):
            self.stop()
            raise RuntimeError("the CLI server did not start")

    def rss_and_fds(self) -> tuple[int, int]:
        """The server's resident memory in KiB and its number of open descriptors."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+([0-9]+)", status)
        assert match is not None
        return int(match[1]), len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def heap(self) -> tuple[int, int]:
        """The objects the server's collector tracks and the blocks its allocator holds."""
        seen = len(self._reports.read_text().splitlines())
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while (lines := self._reports.read_text().splitlines())[seen:] == []:
            if time.monotonic() > deadline:
                raise RuntimeError("the CLI server did not report its heap")
            time.sleep(0.05)
        objects, blocks = lines[seen].split()
        return int(objects), int(blocks)

    def stop(self) -> str:
        """Stop it; return what it wrote to stderr."""
        self.process.terminate()
        _, err = self.process.communicate(timeout=30)
        shutil.rmtree(self._reports.parent, ignore_errors=True)
        return err


def make_files(root: Path) -> dict[str, bytes]:
    """Write the served files and wait until they carry validators."""
    files = {f"file{number}.bin": os.urandom(10 * 1024 + number) for number in range(8)}
    for name, content in files.items():
        (root / name).write_bytes(content)
    time.sleep(1.3)  # validators are issued 1.1 s after a change (and a tick)
    return files


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    match = _LENGTH.search(head)
    length = int(match[1]) if match and not head.startswith(b"HTTP/1.1 304") else 0
    return head, await reader.readexactly(length)


async def _connection(
    port: int, files: dict[str, bytes], requests: int, offset: int, report: Report
) -> None:
    names = sorted(files)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    etags: dict[str, bytes] = {}
    try:
        for number in range(requests):
            name = names[(offset + number) % len(names)]
            content = files[name]
            kind = number % 3
            fields = b""
            if kind == 1 and name in etags:
                fields = b"If-None-Match: " + etags[name] + b"\r\n"
            elif kind == 2:
                fields = b"Range: bytes=100-1099\r\n"
            writer.write(
                f"GET /{name} HTTP/1.1\r\nHost: load\r\n".encode() + fields + b"\r\n"
            )
            head, body = await _read_response(reader)
            report.requests += 1
            if match := _ETAG.search(head):
                etags[name] = match[1]
            if head.startswith(b"HTTP/1.1 200"):
                ok = body == content
            elif head.startswith(b"HTTP/1.1 304"):
                ok = kind == 1 and body == b""
            elif head.startswith(b"HTTP/1.1 206"):
                ok = kind == 2 and body == content[100:1100]
            else:
                ok = False
            if not ok:
                report.errors.append(f"{name}: {head.splitlines()[0]!r}")
    except (OSError, asyncio.IncompleteReadError) as error:
        report.errors.append(f"connection {offset}: {error!r}")
    finally:
        writer.close()
        await writer.wait_closed()


async def load(
    port: int, files: dict[str, bytes], connections: int, requests: int
) -> Report:
    """Run one round: every connection at once, each with its requests in turn."""
    report = Report()
    start = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, files, requests, n, report) for n in range(connections))
    )
    report.seconds = time.perf_counter() - start
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=30, help="per connection")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="the server's --workers, one run each (default: 1 2); the heap and the "
        "descriptors are followed with 1",
    )
    args = parser.parse_args(argv)
    errors = ""
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        files = make_files(Path(tmp))
        for workers in args.workers:
            print(f"--workers {workers}")
            server = CliServer(Path(tmp), "--workers", str(workers))
            try:
                for round_number in range(1, args.rounds + 1):
                    _round(server, files, args, round_number, followed=workers == 1)
            finally:
                errors += server.stop()
    if errors.strip():
        print(errors, file=sys.stderr)
    return 0


def _round(
    server: CliServer,
    files: dict[str, bytes],
    args: argparse.Namespace,
    round_number: int,
    *,
    followed: bool,
) -> None:
    if followed:
        before, heap_before = server.rss_and_fds(), server.heap()
    report = asyncio.run(load(server.port, files, args.connections, args.requests))
    line = (
        f"round {round_number}: {report.requests} requests on {args.connections} "
        f"connections in {report.seconds:.1f} s "
        f"({report.requests / report.seconds:.0f}/s), {len(report.errors)} errors"
    )
    if followed:
        time.sleep(0.5)
        after, heap_after = server.rss_and_fds(), server.heap()
        line += (
            f"; server RSS {before[0]} -> {after[0]} KiB, objects {heap_before[0]} -> "
            f"{heap_after[0]}, allocated blocks {heap_before[1]} -> {heap_after[1]}, "
            f"open fds {before[1]} -> {after[1]}"
        )
    print(line)
    for error in report.errors[:10]:
        print(f"  {error}")


if __name__ == "__main__":
    sys.exit(main())
