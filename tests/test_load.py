"""A thousand keep-alive connections at once against the CLI server, loopback only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from benchmarks.load import CliServer, load, make_files


def test_a_thousand_connections_at_once(tmp_path: Path) -> None:
    files = make_files(tmp_path)
    server = CliServer(tmp_path)
    try:
        rounds = []
        for _ in range(2):
            before = server.rss_and_fds()
            report = asyncio.run(load(server.port, files, connections=1000, requests=3))
            # The server closes its side as it notices each client gone.
            deadline = time.monotonic() + 10
            while server.rss_and_fds()[1] > before[1] and time.monotonic() < deadline:
                time.sleep(0.1)
            rounds.append((before, server.rss_and_fds(), report))
    finally:
        err = server.stop()
    for before, after, report in rounds:
        assert report.errors == []
        assert report.requests == 3000
        assert after[1] == before[1], "open descriptors back where they started"
    # Once warm, another round leaves memory where it was: a leak of a kilobyte a
    # request would be 3 MiB; the allocator's own noise stays well under that.
    (_, _, _), (before, after, _) = rounds
    assert after[0] - before[0] < 3 * 1024
    assert "Traceback" not in err
