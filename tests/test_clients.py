"""Real revalidating clients that no one here wrote, against the CLI server: curl, wget."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.load import CliServer

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("wget")), reason="needs curl and wget"
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A served directory with page.html in it, and the page's URL."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "page.html").write_bytes(b"version one\n")
    server = CliServer(root)
    yield root / "page.html", f"http://127.0.0.1:{server.port}/page.html"
    server.stop()


def curl(*args: str) -> tuple[int, int]:
    """Run curl; return the status and the number of body bytes it downloaded."""
    out = subprocess.run(
        ["curl", "-sS", "-w", "%{http_code} %{size_download}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    status, size = out.split()
    return int(status), int(size)


def rewrite_keeping_mtime(path: Path, content: bytes) -> None:
    """What cp -p, rsync -t and tar x do: new bytes, the old mtime."""
    mtime = path.stat().st_mtime_ns
    path.write_bytes(content)
    os.utime(path, ns=(mtime, mtime))


def test_curl_time_cond(site: tuple[Path, str], tmp_path: Path) -> None:
    page, url = site
    local = tmp_path / "local.html"
    time.sleep(1.05)  # old enough for a Last-Modified
    assert curl("-R", "-o", str(local), "-z", str(local), url) == (200, 12)
    # An unchanged file: curl sends If-Modified-Since from its copy's time: nothing.
    assert curl("-R", "-o", str(local), "-z", str(local), url) == (304, 0)
    rewrite_keeping_mtime(page, b"version two\n")
    assert curl("-R", "-o", str(local), "-z", str(local), url) == (200, 12)
    assert local.read_bytes() == b"version two\n"


def test_curl_after_two_writes_in_one_second(
    site: tuple[Path, str], tmp_path: Path
) -> None:
    page, url = site
    local = tmp_path / "local.html"
    time.sleep(1 - time.time() % 1 + 0.01)
    page.write_bytes(b"version one\n")
    assert curl("-R", "-o", str(local), "-z", str(local), url) == (200, 12)
    page.write_bytes(b"version two\n")  # the same second, the same size
    assert curl("-R", "-o", str(local), "-z", str(local), url) == (200, 12)
    assert local.read_bytes() == b"version two\n"


def test_curl_ranges_and_resume(site: tuple[Path, str], tmp_path: Path) -> None:
    page, url = site
    part = tmp_path / "part.html"
    assert curl("-r", "0-6", "-o", str(part), url) == (206, 7)
    assert part.read_bytes() == b"version"
    assert curl("-C", "-", "-o", str(part), url) == (206, 5)
    assert part.read_bytes() == page.read_bytes()


def test_wget_timestamping(site: tuple[Path, str], tmp_path: Path) -> None:
    page, url = site
    time.sleep(1.05)

    def wget() -> str:
        return subprocess.run(
            ["wget", "-N", "-S", url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stderr

    assert "HTTP/1.1 200 OK" in wget()
    assert "HTTP/1.1 304 Not Modified" in wget()
    # Early in a second, so that the download below shares the rewrite's second.
    time.sleep(1 - time.time() % 1 + 0.01)
    rewrite_keeping_mtime(page, b"version two\n")
    answer = wget()
    assert "HTTP/1.1 200 OK" in answer
    assert "Last-Modified" not in answer  # changed less than a second ago
    assert (tmp_path / "page.html").read_bytes() == b"version two\n"
    time.sleep(1.05)
    # With no Last-Modified, wget sends the time it saved the file, in the second of
    # the rewrite: that cannot tell its copy from one saved before the rewrite, so it
    # downloads again, this time with a Last-Modified, which then revalidates.
    assert "HTTP/1.1 200 OK" in wget()
    assert "HTTP/1.1 304 Not Modified" in wget()
