"""The cached-only file system, against the real kernel: what it answers, and when not."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aiohttp_conditional._kernel import CACHE, CACHED_LOOKUPS, DISK, WouldBlock

from .conftest import drop_caches

pytestmark = pytest.mark.skipif(
    not CACHED_LOOKUPS, reason="no openat2(RESOLVE_CACHED) on this kernel"
)


def test_a_cached_file_is_stated_as_os_stat_does(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"content")
    (tmp_path / "link").symlink_to(path)
    assert CACHE.stat(str(path)) == os.stat(path)
    assert CACHE.stat(str(tmp_path / "link")) == os.stat(path)
    assert CACHE.lstat(str(tmp_path / "link")) == os.lstat(tmp_path / "link")
    assert CACHE.probe(str(path)) == DISK.probe(str(path))


def test_a_missing_name_is_known_only_once_looked_up(tmp_path: Path) -> None:
    missing = str(tmp_path / "f.txt.gz")
    # Never looked up: the kernel would have to read the directory to know.
    with pytest.raises(WouldBlock):
        CACHE.probe(missing)
    assert DISK.probe(missing) is None  # a real lookup caches the miss
    assert CACHE.probe(missing) is None
    with pytest.raises(FileNotFoundError):
        CACHE.stat(missing)


def test_nothing_is_answered_after_the_caches_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 5000)
    drop_caches(path)
    with pytest.raises(WouldBlock):
        CACHE.stat(str(path))
    # The inode is back, its pages are not.  The kernel may still read them at once
    # for RWF_NOWAIT when it can without waiting (seen here on a virtio disk, for
    # about half of such reads): then the bytes must be the file's.  A read that
    # would wait must raise; one of a few tries must be such a read.
    waited = False
    for _ in range(8):
        drop_caches(path, pages=True)
        fd = CACHE.open(str(path), 0)
        try:
            assert CACHE.read(fd, 5000, 0) == b"x" * 5000
        except WouldBlock:
            waited = True
            os.pread(fd, 5000, 0)
            assert CACHE.read(fd, 5000, 0) == b"x" * 5000
            break
        finally:
            os.close(fd)
    if not waited:
        pytest.skip("this kernel read every uncached page at once for RWF_NOWAIT")


def test_a_short_read_is_left_to_the_job(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"content")
    fd = CACHE.open(str(path), 0)
    try:
        with pytest.raises(WouldBlock):
            CACHE.read(fd, 100, 0)  # shrank, or partly cached: the job tells which
    finally:
        os.close(fd)


def test_a_file_system_not_known_to_be_local_is_never_asked() -> None:
    # procfs is not on the list: its files are cached names like any other, but a
    # file system off the list (a network or FUSE one) may ask its server.
    os.stat("/proc/self/status")
    with pytest.raises(WouldBlock):
        CACHE.stat("/proc/self/status")


def test_at_the_descriptor_limit_the_job_answers(tmp_path: Path) -> None:
    # A cached lookup needs a descriptor, a plain stat does not: EMFILE is no
    # answer about the file (a 404 would be cached by a CDN), so the job decides.
    path = tmp_path / "f.txt"
    path.write_bytes(b"content")
    os.stat(path)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    taken = []
    try:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard)
        )
        with contextlib.suppress(OSError):
            while True:
                taken.append(os.open(os.devnull, os.O_RDONLY))
        with pytest.raises(WouldBlock):
            CACHE.stat(str(path))
        assert DISK.stat(str(path)) == os.stat(path)
    finally:
        for fd in taken:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_forked_worker_learns_of_mounts_on_its_own(tmp_path: Path) -> None:
    # Workers forked from one parent (gunicorn, --workers) must not share the notice
    # that the mount table changed: whoever read it first would leave the others
    # with an old list of local devices, whose numbers the kernel reuses.
    mount = tmp_path / "mnt"
    mount.mkdir()
    check = textwrap.dedent(
        f"""
        import os, subprocess, sys
        from aiohttp_conditional._kernel import CACHE, WouldBlock

        mount = {str(mount)!r}
        go_read, go_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            os.read(go_read, 1)  # the parent has mounted, and read the notice
            CACHE.refresh()
            try:
                CACHE.stat(mount + "/f.txt")
            except WouldBlock:
                os._exit(1)
            os._exit(0)
        os.close(go_read)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", mount], check=True)
        try:
            open(mount + "/f.txt", "wb").close()
            CACHE.refresh()
            os.write(go_write, b"x")
            _, status = os.waitpid(pid, 0)
        finally:
            subprocess.run(["umount", mount], check=True)
        print("ok" if os.waitstatus_to_exitcode(status) == 0 else "stale")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60
    )
    if "mount:" in result.stderr:
        pytest.skip(f"cannot mount here: {result.stderr.strip()}")
    assert result.stdout == "ok\n", result.stderr


def test_a_file_system_mounted_later_is_recognised(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode:
        pytest.skip(f"cannot mount here: {result.stderr.decode().strip()}")
    try:
        (mount / "f.txt").write_bytes(b"content")
        CACHE.refresh()  # as each request does first
        assert CACHE.stat(str(mount / "f.txt")).st_size == 7
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    # The same path is on the parent's file system again, and known to be local.
    CACHE.refresh()
    os.stat(mount)
    assert CACHE.stat(str(mount)) == os.stat(mount)


# A seccomp filter that answers ENOSYS for openat2 (437), as some container runtimes'
# default profiles do, installed in a child process before it imports the library.
_SECCOMP = """
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
program = b"".join([
    struct.pack("HBBI", 0x20, 0, 0, 0),  # load the system call's number
    struct.pack("HBBI", 0x15, 0, 1, 437),  # openat2?
    struct.pack("HBBI", 0x06, 0, 0, 0x00050000 | 38),  # then fail with ENOSYS
    struct.pack("HBBI", 0x06, 0, 0, 0x7FFF0000),  # else allow
])
buffer = ctypes.create_string_buffer(program)
fprog = struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(buffer))
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) == 0, ctypes.get_errno()
"""


def test_without_openat2_every_request_takes_the_job(tmp_path: Path) -> None:
    check = textwrap.dedent(
        """
        import asyncio
        from concurrent.futures import ThreadPoolExecutor
        from aiohttp_conditional import _jobs, _kernel

        assert not _kernel.CACHED_LOOKUPS
        jobs = []

        class Counting(ThreadPoolExecutor):
            def submit(self, fn, /, *args, **kwargs):
                jobs.append(fn.__name__)
                return super().submit(fn, *args, **kwargs)

        async def main():
            asyncio.get_running_loop().set_default_executor(Counting())
            for _ in range(3):
                assert await _jobs.run("auto", lambda fs: fs.may_block)

        asyncio.run(main())
        assert jobs == ["executor_job"] * 3, jobs
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", _SECCOMP + check],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
