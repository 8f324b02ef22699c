"""The CLI server with a heap probe: ``python -m benchmarks._probe FILE ARGS``.

The server is the CLI itself, run as ``-m`` runs it.  On SIGUSR1 it collects garbage
and appends to FILE one line: the number of objects the collector tracks, then the
number of memory blocks Python's allocator holds.  A leak raises them by one or more
a request; resident memory is a poor witness, since the allocator keeps freed arenas
and their size follows how many connections happened to be open at the peak.
"""

from __future__ import annotations

import gc
import runpy
import signal
import sys
from pathlib import Path
from types import FrameType


def main() -> None:
    report = Path(sys.argv[1])

    def write_counts(signum: int, frame: FrameType | None) -> None:
        gc.collect()
        with report.open("a") as file:
            file.write(f"{len(gc.get_objects())} {sys.getallocatedblocks()}\n")

    signal.signal(signal.SIGUSR1, write_counts)
    sys.argv = ["aiohttp_conditional", *sys.argv[2:]]
    runpy.run_module("aiohttp_conditional", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
