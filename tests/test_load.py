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
        descriptors, heaps, reports = [], [], []
        for _ in range(3):
            before = server.rss_and_fds()[1]
            reports.append(asyncio.run(load(server.port, files, 1000, requests=3)))
            # The server closes its side as it notices each client gone.
            deadline = time.monotonic() + 10
            while server.rss_and_fds()[1] > before and time.monotonic() < deadline:
                time.sleep(0.1)
            descriptors.append((before, server.rss_and_fds()[1]))
            heaps.append(server.heap())
    finally:
        err = server.stop()
    for report in reports:
        assert report.errors == []
        assert report.requests == 3000
    for before, after in descriptors:
        assert after == before, "open descriptors back where they started"
    # Once warm (after the first round), 6000 more requests leave the heap where it
    # was: anything kept per request, even one object or block, would add 6000.
    (objects, blocks), _, (objects_after, blocks_after) = heaps
    assert objects_after - objects < 600
    assert blocks_after - blocks < 600
    assert "Traceback" not in err
