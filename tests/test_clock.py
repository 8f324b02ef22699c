"""The clock behind validators, against the kernel's own timestamps.

Linux stamps most changes with its coarse clock, a tick behind the one Date is read
from.  ramfs stamps every change so (it has no fine timestamps, on any kernel), which
makes it the file system where a rule that reads the fine clock fails most often;
ext4 and tmpfs on Linux 6.13 and later stamp a change right after a stat finely.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.pytest_plugin import AiohttpClient

from aiohttp_conditional import ConditionalFileResponse
from aiohttp_conditional._clock import fs_now_ns

NS = 1_000_000_000
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="ramfs and the coarse clock are Linux's",
)


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    """Mount a ramfs for the test (root only, as in CI), and unmount it after."""
    mount_point = tmp_path / "ramfs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "ramfs", "ramfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a ramfs: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


@linux_only
@pytest.mark.parametrize("where", ["ramfs", "tmp_path"])
def test_no_change_is_stamped_before_fs_now(
    where: str, request: pytest.FixtureRequest
) -> None:
    directory: Path = request.getfixturevalue(where)
    path = directory / "f"
    path.write_bytes(b"0")
    for number in range(300):
        before = fs_now_ns()
        with path.open("r+b") as file:
            file.write(b"%d" % (number % 10))
        st = path.stat()
        assert max(st.st_mtime_ns, st.st_ctime_ns) >= before


def next_coarse_second() -> None:
    """Wait until the kernel's coarse clock has just turned a second."""
    second = fs_now_ns() // NS
    while fs_now_ns() // NS == second:
        time.sleep(0.0002)


@linux_only
async def test_a_rewrite_right_after_the_first_validators_never_passes_them(
    aiohttp_client: AiohttpClient, ramfs: Path
) -> None:
    # The first validators are issued a second after the change, and the file is
    # rewritten in place (same size) at once: stamped by the coarse clock, still in
    # the second of the Last-Modified just sent.  Every client that holds that date
    # (curl -z, wget -N, a cache that kept only Last-Modified) must see the new bytes.
    path = ramfs / "app.js"

    async def handler(request: web.Request) -> web.StreamResponse:
        return ConditionalFileResponse(path)

    app = web.Application()
    app.router.add_get("/f", handler)
    client = await aiohttp_client(app)
    for attempt in range(4):
        old, new = b"old %d " % attempt * 20, b"new %d " % attempt * 20
        next_coarse_second()
        path.write_bytes(old)
        last_modified = None
        deadline = time.monotonic() + 5
        while last_modified is None and time.monotonic() < deadline:
            async with client.get("/f") as resp:
                assert await resp.read() == old
                last_modified = resp.headers.get("Last-Modified")
        assert last_modified is not None
        with path.open("r+b") as file:
            file.write(new)
        async with client.get("/f", headers={"If-Modified-Since": last_modified}) as r:
            assert (r.status, await r.read()) == (200, new)
        unmodified = {"If-Unmodified-Since": last_modified}
        async with client.get("/f", headers=unmodified) as resp:
            assert resp.status == 412
        partial = {"If-Range": last_modified, "Range": "bytes=0-3"}
        async with client.get("/f", headers=partial) as resp:
            assert (resp.status, await resp.read()) == (200, new)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
