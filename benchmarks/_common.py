"""What the asv suite and compare.py share: the files, the server and a lean client."""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

IMPLS: Final = (
    "upstream-handler",
    "upstream-static",
    "ours-handler",
    "ours-static",
    "ours-handler-executor",
    "ours-static-executor",
    "ours-static-content-etag",
    "floor",
)
SCENARIOS: Final = (
    "304-if-none-match",
    "304-if-modified-since",
    "412",
    "200-10KiB",
    "200-10MiB",
    "206",
    "head",
)
# Which implementation each one is measured against.
BASELINE: Final = {
    "upstream-handler": "upstream-handler",
    "ours-handler": "upstream-handler",
    "upstream-static": "upstream-static",
    "ours-static": "upstream-static",
    "ours-handler-executor": "upstream-handler",
    "ours-static-executor": "upstream-static",
    "ours-static-content-etag": "upstream-static",
    "floor": "upstream-handler",
}
BROWSER_ACCEPT_ENCODING: Final = b"gzip, deflate, br, zstd"
SMALL, LARGE = "small.txt", "large.bin"
_CONTENT_LENGTH: Final = re.compile(rb"\r\ncontent-length: *([0-9]+)", re.IGNORECASE)
_HEADER: Final = re.compile(rb"\r\n(etag|last-modified): *([^\r]*)", re.IGNORECASE)


def make_files(root: Path) -> Path:
    """Write the served files and wait until they are old enough to carry validators."""
    root.mkdir(parents=True, exist_ok=True)
    (root / SMALL).write_bytes(os.urandom(10 * 1024))
    (root / LARGE).write_bytes(os.urandom(10 * 1024 * 1024))
    time.sleep(1.3)  # validators are issued 1.1 s after a change (and a tick)
    return root


class Server:
    """The benchmark server in a process of its own."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        script = Path(__file__).with_name("_server.py")
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(self.port), str(root)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the benchmark server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def rss_and_fds(self) -> tuple[int, int]:
        """The server's resident memory in KiB and its number of open descriptors."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+([0-9]+)", status)[1])  # type: ignore[index]
        return rss, len(os.listdir(f"/proc/{self.process.pid}/fd"))


class Client:
    """A keep-alive HTTP/1.1 client that does as little as a client can."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray(11 * 1024 * 1024)
        self.view = memoryview(self.buffer)

    def close(self) -> None:
        self.sock.close()

    def request(self, raw: bytes, has_body: bool) -> bytes:
        """Send a prepared request; read the whole response; return its head."""
        self.sock.sendall(raw)
        got = 0
        while True:
            got += self.sock.recv_into(self.view[got:])
            end = self.buffer.find(b"\r\n\r\n", 0, got)
            if end >= 0:
                break
        head = bytes(self.buffer[: end + 2])
        if has_body and not head.startswith((b"HTTP/1.1 304", b"HTTP/1.1 412")):
            match = _CONTENT_LENGTH.search(head)
            total = end + 4 + (int(match[1]) if match else 0)
            while got < total:
                got += self.sock.recv_into(self.view[got:])
        return head


class Load:
    """Keep-alive connections that each send a request as soon as the last is read.

    As wrk does, with one thread: the server always has ``connections`` requests in
    hand, so what is measured is its throughput, not one request's round trip.
    """

    def __init__(self, port: int, connections: int) -> None:
        self.socks = []
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self.socks.append(sock)
        self.selector = selectors.DefaultSelector()
        for sock in self.socks:
            self.selector.register(sock, selectors.EVENT_READ)

    def close(self) -> None:
        self.selector.close()
        for sock in self.socks:
            sock.close()

    def run(self, raw: bytes, has_body: bool, seconds: float) -> float:
        """Send ``raw`` on every connection for ``seconds``; return responses a second."""
        pending = {sock: bytearray() for sock in self.socks}
        for sock in self.socks:
            sock.sendall(raw)
        done = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for key, _ in self.selector.select():
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                data = pending[ready]
                data += ready.recv(1 << 20)
                if not _complete(data, has_body):
                    continue
                done += 1
                data.clear()
                if time.perf_counter() < deadline:
                    ready.sendall(raw)
                else:
                    del pending[ready]
            if not pending:
                return done / (time.perf_counter() - start)


def _complete(data: bytearray, has_body: bool) -> bool:
    """Tell whether ``data`` holds one whole response (and no more is expected)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    if not has_body or data.startswith((b"HTTP/1.1 304", b"HTTP/1.1 412")):
        return True
    match = _CONTENT_LENGTH.search(data, 0, end + 2)
    return len(data) >= end + 4 + (int(match[1]) if match else 0)


def pin(server_pid: int) -> None:
    """Give the server one core and this process the others, where there are two."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        os.sched_setaffinity(server_pid, cores[:1])
        os.sched_setaffinity(0, cores[1:])


def build_request(impl: str, scenario: str, validators: dict[str, bytes]) -> bytes:
    """Return the raw request of a scenario against an implementation."""
    name = LARGE if scenario == "200-10MiB" else SMALL
    method = b"HEAD" if scenario == "head" else b"GET"
    fields = [b"Host: bench", b"Accept-Encoding: " + BROWSER_ACCEPT_ENCODING]
    if scenario == "304-if-none-match":
        fields.append(b"If-None-Match: " + validators.get("etag", b'"none"'))
    elif scenario == "304-if-modified-since":
        fields.append(b"If-Modified-Since: " + validators.get("last-modified", b"x"))
    elif scenario == "412":
        fields.append(b'If-Match: "not-this-one"')
    elif scenario == "206":
        fields.append(b"Range: bytes=0-1023")
    target = f"/{impl}/{name}".encode()
    return (
        method + b" " + target + b" HTTP/1.1\r\n" + b"\r\n".join(fields) + b"\r\n\r\n"
    )


def validators_of(client: Client, impl: str) -> dict[str, bytes]:
    """Ask an implementation for the ETag and Last-Modified of the small file."""
    head = client.request(build_request(impl, "200-10KiB", {}), has_body=True)
    return {name.decode().lower(): value for name, value in _HEADER.findall(head)}


def applies(impl: str, scenario: str) -> bool:
    """The floor is a bare 304: it only stands beside the 304 scenarios."""
    return impl != "floor" or scenario.startswith("304")
