"""What one hostile client can cost the server: ``python -m benchmarks.hostile``.

aiohttp refuses a header line longer than its ``max_field_size`` and more lines than its
``max_headers``, but a field may be repeated: RFC 9110 §5.3 lets a recipient join the
lines into one comma-separated value, so a single request can carry about 1 MB of one
field.  (Upstream reads only the first line, ``headers.get``; ours joins them all.)
For each implementation (upstream's handler and add_static, ours likewise) a fresh
benchmark server runs in a process of its own, so that its CPU time and memory are the
implementation's alone, and one keep-alive client on loopback sends it such requests:
a Range of many tiny ranges, If-None-Match and If-Match of commas only or of many
entity-tags, an Accept-Encoding of many codings, an If-Modified-Since of junk.  The
limits are found first by asking the server; aiohttp logs a traceback on stderr for
each of the few probes its parser refuses.

The server's CPU time is the sum of its threads' run time in
``/proc/PID/task/*/schedstat``, in nanoseconds, read before and after each request, so
the median and the worst of single requests mean something.  Then the server's resident
memory is read before and after a long run of requests whose values are all distinct,
so that no cache can serve one from another.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import inspect
import re
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from itertools import chain, count, repeat
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp.web_protocol import RequestHandler

from ._common import Server

IMPLS: Final = ("upstream-handler", "upstream-static", "ours-handler", "ours-static")
NAME: Final = "small.txt"
# Each value carries the request number in place of this mark, padded to its width so
# that lines packed once for a case keep their length; "@" occurs nowhere else.
_MARK: Final = "@@@@@@@"
_PROBE: Final = "X-Probe"
_WARM_UP: Final = 2
_REQUEST_SECONDS: Final = 60.0
_MOST_RESPONSE: Final = 64 * 1024 * 1024
_KIB: Final = re.compile(r"^(Vm\w+):\s+([0-9]+) kB$", re.MULTILINE)


@dataclass(frozen=True)
class Case:
    """One hostile field: its name, and the list members its lines are packed from."""

    name: str
    pieces: Callable[[], Iterator[str]]
    separator: str


CASES: Final = {
    "plain": Case("", lambda: iter(()), ""),
    # The first line alone starts with "bytes=": the server joins the lines with ", ".
    "range": Case(
        "Range",
        lambda: chain([f"bytes={_MARK}-{_MARK}"], (f"{i}-{i}" for i in count(0, 2))),
        ",",
    ),
    "if-none-match-commas": Case("If-None-Match", lambda: repeat(","), ""),
    "if-none-match-etags": Case(
        "If-None-Match", lambda: (f'"a{_MARK}.{i}"' for i in count()), ", "
    ),
    "if-match-commas": Case("If-Match", lambda: repeat(","), ""),
    "if-match-etags": Case(
        "If-Match", lambda: (f'"a{_MARK}.{i}"' for i in count()), ", "
    ),
    "accept-encoding": Case(
        "Accept-Encoding",
        lambda: chain(["gzip;q=0.5", "br;q=0.1"], (f"x{_MARK}.{i}" for i in count())),
        ", ",
    ),
    "if-modified-since": Case(
        "If-Modified-Since",
        lambda: chain(
            ["Sun, 06 Nov 1994 08:49:37 GMT"], (f"junk{_MARK}.{i}" for i in count())
        ),
        " ",
    ),
}
# The cases whose values differ from one request to the next.
MEMORY_MIX: Final = (
    "accept-encoding",
    "if-modified-since",
    "if-none-match-etags",
    "if-match-etags",
    "range",
)


@dataclass(frozen=True)
class Limits:
    """How much of one field the server takes in a request, as found by asking it."""

    lines: int  # of one field, beside Host
    rooms: tuple[tuple[str, int], ...]  # the longest value of a line of each field
    over: tuple[tuple[str, str], ...]  # requests just over a limit, and their statuses

    def room(self, name: str) -> int:
        """Return the longest value a line of the field ``name`` may carry."""
        return dict(self.rooms)[name]


@dataclass
class CaseResult:
    """The server's CPU time over the requests of one case."""

    samples: list[float] = field(default_factory=list)
    total: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    warm_up: Counter[str] = field(default_factory=Counter)


@dataclass
class MemoryResult:
    """The server's resident memory around a run of distinct requests, in KiB."""

    before: int = 0
    after: int = 0
    peak: int = 0
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    warm_up: Counter[str] = field(default_factory=Counter)


@dataclass
class ImplResult:
    """All that was measured of one implementation."""

    cases: dict[str, CaseResult] = field(default_factory=dict)
    memory: MemoryResult = field(default_factory=MemoryResult)
    notes: list[str] = field(default_factory=list)


def make_files(root: Path) -> None:
    """Write a 10 KiB text file, then its gzip variant, and wait for validators."""
    text = "".join(f"line {i:05d}: the quick brown fox\n" for i in range(320))
    (root / NAME).write_bytes(text.encode()[: 10 * 1024])
    # After the file, so that the variant is never older than what it stands for.
    (root / f"{NAME}.gz").write_bytes(gzip.compress((root / NAME).read_bytes()))
    time.sleep(1.3)  # validators are issued 1.1 s after a change (and a tick)


def pack(pieces: Iterable[str], separator: str, room: int, lines: int) -> list[str]:
    """Pack list members greedily into ``lines`` lines of at most ``room`` characters."""
    if lines <= 0:
        return []  # the pieces may never end
    packed: list[str] = []
    parts: list[str] = []
    length = 0
    for piece in pieces:
        grown = length + len(separator) + len(piece) if parts else len(piece)
        if grown > room:
            packed.append(separator.join(parts))
            if len(packed) == lines:
                break
            parts, grown = [], len(piece)
        parts.append(piece)
        length = grown
    return packed


@cache
def _fields(case: str, room: int, lines: int) -> str:
    # Packing a megabyte of members takes a while: do it once a case, then only put
    # each request's number in place of the mark.
    spec = CASES[case]
    packed = pack(spec.pieces(), spec.separator, room, lines)
    return "".join(f"{spec.name}: {line}\r\n" for line in packed)


def build_request(impl: str, case: str, limits: Limits, number: int) -> bytes:
    """Return the raw request of a case, its values marked with ``number``."""
    name = CASES[case].name
    room = limits.room(name) if name else 0
    fields = _fields(case, room, limits.lines if name else 0)
    head = f"GET /{impl}/{NAME} HTTP/1.1\r\nHost: hostile\r\n{fields}\r\n"
    return head.replace(_MARK, f"{number:07d}").encode("ascii")


class Connection:
    """A keep-alive HTTP/1.1 connection on a raw non-blocking socket.

    A request is sent while its response is read, so that a server that answers early
    and closes (400 for a field too large) is heard before the send fails.  When the
    server closes, or a request fails, the next request opens a new connection.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = bytearray()

    def close(self) -> None:
        """Close the socket, if open, and forget what was left unread."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.buffer.clear()

    async def request(self, raw: bytes) -> str:
        """Send a request; read its whole response; return its status or what failed."""
        loop = asyncio.get_running_loop()
        if self.sock is None:
            self.sock = socket.socket()
            self.sock.setblocking(False)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await asyncio.wait_for(
                    loop.sock_connect(self.sock, ("127.0.0.1", self.port)),
                    _REQUEST_SECONDS,
                )
            except (OSError, asyncio.TimeoutError) as error:
                self.close()
                return f"connect {type(error).__name__}"
        sending = asyncio.ensure_future(loop.sock_sendall(self.sock, raw))
        try:
            status, keep_alive = await asyncio.wait_for(
                self._response(), _REQUEST_SECONDS
            )
        except asyncio.TimeoutError:
            status, keep_alive = "timeout", False
        except (OSError, EOFError, ValueError, IndexError) as error:
            status, keep_alive = type(error).__name__, False
        if keep_alive:
            try:
                await asyncio.wait_for(sending, _REQUEST_SECONDS)
            except (OSError, asyncio.TimeoutError) as error:
                status, keep_alive = f"{status} then {type(error).__name__}", False
        if not keep_alive:
            sending.cancel()
            # Collects the failure of a send that the server cut short.
            await asyncio.gather(sending, return_exceptions=True)
            self.close()
        return status

    async def _receive(self) -> None:
        assert self.sock is not None
        if len(self.buffer) > _MOST_RESPONSE:
            raise ValueError("response too large")
        data = await asyncio.get_running_loop().sock_recv(self.sock, 256 * 1024)
        if not data:
            raise EOFError
        self.buffer += data

    async def _until(self, separator: bytes) -> bytes:
        while (end := self.buffer.find(separator)) < 0:
            await self._receive()
        data = bytes(self.buffer[: end + len(separator)])
        del self.buffer[: end + len(separator)]
        return data

    async def _exactly(self, size: int) -> None:
        while len(self.buffer) < size:
            await self._receive()
        del self.buffer[:size]

    async def _response(self) -> tuple[str, bool]:
        head = (await self._until(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head.split("\r\n")
        status = status_line.split(" ", 2)[1]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        # HTTP/1.0 (aiohttp's answer to a request it cannot parse) closes by default.
        if status_line.startswith("HTTP/1.0"):
            keep_alive = headers.get("connection") == "keep-alive"
        else:
            keep_alive = headers.get("connection") != "close"
        if status in ("204", "304"):
            pass
        elif headers.get("transfer-encoding") == "chunked":
            while size := int((await self._until(b"\r\n")).split(b";")[0], 16):
                await self._exactly(size + 2)
            while await self._until(b"\r\n") != b"\r\n":
                pass  # trailers
        elif "content-length" in headers:
            await self._exactly(int(headers["content-length"]))
        else:
            # Delimited by the close: read until it comes (or the size or time runs out).
            with contextlib.suppress(EOFError):
                while True:
                    await self._receive()
            keep_alive = False
        return status, keep_alive


def cpu_seconds(pid: int) -> float:
    """Return the time the process's threads have run, to the nanosecond."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a worker thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def memory_kib(pid: int) -> dict[str, int]:
    """Return the process's VmRSS, VmHWM (its peak) and the like, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {name: int(value) for name, value in _KIB.findall(status)}


def _probe_request(impl: str, name: str, lines: int, size: int) -> bytes:
    fields = f"{name}: {'a' * size}\r\n" * lines
    return f"GET /{impl}/{NAME} HTTP/1.1\r\nHost: hostile\r\n{fields}\r\n".encode()


async def find_limits(port: int, impl: str) -> Limits:
    """Find how many lines of one field the server takes, and how long each may be."""
    defaults = inspect.signature(RequestHandler.__init__).parameters
    most_headers = int(defaults["max_headers"].default)
    most_field = int(defaults["max_field_size"].default)
    connection = Connection(port)

    async def takes(name: str, lines: int, size: int) -> bool:
        status = await connection.request(_probe_request(impl, name, lines, size))
        # The parser refuses with a 400 and closes; a value the route dislikes (a
        # Range of "aaa") still gets an answer of its own.
        return status.isdigit() and status not in ("400", "431")

    async def room_of(name: str) -> int:
        # The C parser means to count name and value, the Python parser the whole line.
        # (The C parser forgets the name unless it straddles two reads, so the value
        # alone may pass a probe and fail under load: never offer more than this.)
        for size in (most_field - len(name), most_field - len(name) - 2):
            if await takes(name, 1, size):
                return size
        raise RuntimeError(f"the server refused every line of {name}")

    async def lines_of(name: str) -> int:
        # The C parser counts the header lines, the Python parser the request line and
        # the blank line as well.
        for lines in range(most_headers - 1, most_headers - 5, -1):
            if await takes(name, lines, 1):
                return lines
        raise RuntimeError(f"the server refused every count of {name}")

    try:
        lines = await lines_of(_PROBE)
        names = sorted({case.name for case in CASES.values() if case.name})
        rooms = tuple([(name, await room_of(name)) for name in names])
        room = await room_of(_PROBE)
        over = (
            (f"{lines + 1} lines", (lines + 1, 1)),
            (f"a line of {len(_PROBE) + room + 1} bytes", (1, room + 1)),
            (f"a value of {most_field + 1} bytes", (1, most_field + 1)),
        )
        statuses = tuple(
            [
                (label, await connection.request(_probe_request(impl, _PROBE, *shape)))
                for label, shape in over
            ]
        )
    finally:
        connection.close()
    return Limits(lines, rooms, statuses)


async def measure_cases(
    server: Server,
    impl: str,
    limits: Limits,
    requests: int,
    numbers: Iterator[int],
    seconds: float,
) -> dict[str, CaseResult]:
    """Send each case's requests in turn, reading the server's CPU time around each."""
    pid = server.process.pid
    connection = Connection(server.port)
    results: dict[str, CaseResult] = {}
    try:
        for case in CASES:
            result = results[case] = CaseResult()
            for _ in range(_WARM_UP):
                raw = build_request(impl, case, limits, next(numbers))
                result.warm_up[await connection.request(raw)] += 1
            deadline = time.monotonic() + seconds
            start = cpu_seconds(pid)
            for _ in range(requests):
                if time.monotonic() > deadline:
                    break
                raw = build_request(impl, case, limits, next(numbers))
                before = cpu_seconds(pid)
                result.statuses[await connection.request(raw)] += 1
                result.samples.append(cpu_seconds(pid) - before)
            result.total = cpu_seconds(pid) - start
    finally:
        connection.close()
    return results


async def measure_memory(
    server: Server,
    impl: str,
    limits: Limits,
    requests: int,
    numbers: Iterator[int],
    seconds: float,
) -> MemoryResult:
    """Read the server's memory around requests with values all distinct, two at once."""
    pid = server.process.pid
    result = MemoryResult()
    connections = (Connection(server.port), Connection(server.port))
    deadline = time.monotonic() + seconds

    async def send(
        connection: Connection, turns: range, statuses: Counter[str]
    ) -> None:
        for turn in turns:
            if time.monotonic() > deadline:
                return
            case = MEMORY_MIX[turn % len(MEMORY_MIX)]
            raw = build_request(impl, case, limits, next(numbers))
            statuses[await connection.request(raw)] += 1

    async def run(total: int, statuses: Counter[str]) -> None:
        await asyncio.gather(
            *(
                send(connection, range(offset, total, len(connections)), statuses)
                for offset, connection in enumerate(connections)
            )
        )

    try:
        # Pools, caches and the allocator's arenas fill up first.
        await run(min(requests, 100), result.warm_up)
        result.before = memory_kib(pid).get("VmRSS", 0)
        await run(requests, result.statuses)
        await asyncio.sleep(0.5)  # let the last responses' work finish
        after = memory_kib(pid)
    finally:
        for connection in connections:
            connection.close()
    result.after, result.peak = after.get("VmRSS", 0), after.get("VmHWM", 0)
    result.requests = sum(result.statuses.values())
    return result


async def measure(
    server: Server,
    impl: str,
    limits: Limits,
    args: argparse.Namespace,
    numbers: Iterator[int],
) -> ImplResult:
    """Measure one implementation on a server of its own."""
    result = ImplResult()
    result.cases = await measure_cases(
        server, impl, limits, args.requests, numbers, args.time_limit
    )
    if server.process.poll() is not None:
        result.notes.append(f"server exited ({server.process.returncode}) in the cases")
        return result
    result.memory = await measure_memory(
        server, impl, limits, args.memory_requests, numbers, args.time_limit
    )
    if server.process.poll() is not None:
        result.notes.append(f"server exited ({server.process.returncode}) in memory")
    # A warm-up answer is not timed, but one unlike any timed answer is news.
    phases: list[tuple[str, Counter[str], Counter[str]]] = [
        (case, measured.warm_up, measured.statuses)
        for case, measured in result.cases.items()
    ]
    phases.append(("memory", result.memory.warm_up, result.memory.statuses))
    for phase, warm_up, statuses in phases:
        if set(warm_up) - set(statuses):
            result.notes.append(
                f"the warm-up of {phase} saw {format_statuses(warm_up)}"
            )
    return result


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Lay out a plain table, each column as wide as its widest cell."""
    widths = [
        max(len(row[column]) for row in [header, *rows])
        for column in range(len(header))
    ]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in [header, *rows]
    )


def format_statuses(statuses: Counter[str]) -> str:
    """Return statuses with their counts, most frequent first."""
    return ", ".join(f"{status} x{n}" for status, n in statuses.most_common()) or "-"


def report(
    limits: Limits, results: dict[str, ImplResult], args: argparse.Namespace
) -> None:
    """Print the limits found, then the CPU, status and memory tables."""
    sizes: dict[int, list[str]] = {}
    for name, room in limits.rooms:
        sizes.setdefault(len(name) + room, []).append(name)
    rooms = "; ".join(
        f"{size} bytes ({', '.join(names)})" for size, names in sizes.items()
    )
    over = ", ".join(f"{label}: {status}" for label, status in limits.over)
    print(
        f"aiohttp {aiohttp.__version__} takes Host and {limits.lines} lines of one field, "
        f"each of at most, in name and value, {rooms}.  Just over: {over}"
    )
    labels = {
        case: f"{case} ({len(build_request(IMPLS[0], case, limits, 0)) / 1024:.0f} KiB)"
        for case in CASES
    }
    cpu_rows = []
    status_rows = []
    for case in CASES:
        cpu_row, status_row = [labels[case]], [labels[case]]
        for impl in IMPLS:
            measured = results[impl].cases.get(case)
            if measured is None or not measured.samples:
                cpu_row.append("-")
                status_row.append("-")
                continue
            median = statistics.median(measured.samples) * 1e3
            worst = max(measured.samples) * 1e3
            average = measured.total / len(measured.samples) * 1e3
            cpu_row.append(f"{median:.2f}/{worst:.2f}/{average:.2f}")
            status_row.append(format_statuses(measured.statuses))
        cpu_rows.append(cpu_row)
        status_rows.append(status_row)
    print()
    print(
        f"Server CPU per request, ms: median/worst/mean over {args.requests} "
        "requests a case"
    )
    print(format_table(["case", *IMPLS], cpu_rows))
    print()
    print("Statuses")
    print(format_table(["case", *IMPLS], status_rows))
    print()
    print(
        f"Server memory, MiB: RSS around {args.memory_requests} requests of distinct "
        f"values ({', '.join(MEMORY_MIX)}), two connections at once"
    )
    memory_rows = []
    for impl in IMPLS:
        memory = results[impl].memory
        memory_rows.append(
            [
                impl,
                str(memory.requests),
                f"{memory.before / 1024:.1f}",
                f"{memory.after / 1024:.1f}",
                f"{(memory.after - memory.before) / 1024:+.1f}",
                f"{memory.peak / 1024:.1f}",
                format_statuses(memory.statuses),
            ]
        )
    print(
        format_table(
            [
                "implementation",
                "requests",
                "before",
                "after",
                "growth",
                "peak",
                "statuses",
            ],
            memory_rows,
        )
    )
    for impl in IMPLS:
        for note in results[impl].notes:
            print(f"{impl}: {note}")


def main(argv: list[str] | None = None) -> int:
    """Measure each implementation, print the tables; 1 if ours failed a request."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile")
    parser.add_argument("--requests", type=int, default=50, help="per case")
    parser.add_argument("--memory-requests", type=int, default=2000)
    parser.add_argument(
        "--time-limit",
        type=float,
        default=300,
        help="seconds a case or the memory run may take before it is cut short",
    )
    args = parser.parse_args(argv)
    # Every request has a number of its own, so that no two values are ever alike.
    numbers = iter(range(10**7))
    results: dict[str, ImplResult] = {}
    limits: Limits | None = None
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        make_files(Path(tmp))
        for impl in IMPLS:
            started = time.monotonic()
            server = Server(Path(tmp))
            try:
                if limits is None:
                    limits = asyncio.run(find_limits(server.port, impl))
                results[impl] = asyncio.run(
                    measure(server, impl, limits, args, numbers)
                )
            finally:
                server.stop()
            print(f"{impl}: measured in {time.monotonic() - started:.0f} s", flush=True)
    assert limits is not None
    print()
    report(limits, results, args)
    # For CI: ours must answer every hostile request, never with a 5xx.
    failed = [
        f"{impl}: {status}"
        for impl, result in results.items()
        if impl.startswith("ours")
        for counts in (
            *(case.statuses for case in result.cases.values()),
            result.memory.statuses,
        )
        for status in counts
        if not status.isdigit() or status.startswith("5")
    ]
    failed += [f"{impl}: {note}" for impl in IMPLS for note in results[impl].notes]
    if failed:
        print("failed:", "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
