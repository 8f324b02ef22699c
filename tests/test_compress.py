"""python -m aiohttp_conditional compress DIR, run as a real process on a real tree."""

from __future__ import annotations

import gzip
import os
import pty
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.pytest_plugin import AiohttpClient

from aiohttp_conditional import add_static

from .conftest import age

brotli = pytest.importorskip("brotli")
zstandard = pytest.importorskip("zstandard")

PAGE = b"<p>hello, compressible world</p>\n" * 200
STYLE = b"body { color: rebeccapurple }\n" * 300


def compress(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiohttp_conditional", "compress", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "index.html").write_bytes(PAGE)
    (root / "css" / "app.css").write_bytes(STYLE)
    (root / "icon.svg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>\n" * 50)
    (root / "photo.png").write_bytes(os.urandom(4000))  # compressed already
    (root / "small.txt").write_bytes(b"tiny\n")  # below --min-size
    (root / "noise.txt").write_bytes(os.urandom(4000))  # not worth it
    (root / "noise.txt.gz").write_bytes(b"a stale variant")
    (root / ".git" / "config").write_bytes(b"[core]\n" * 200)  # hidden
    (root / "link.html").symlink_to(root / "index.html")
    return root


def variants(root: Path) -> set[str]:
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.suffix in (".br", ".zst", ".gz")
    }


def test_compress_writes_the_variants_worth_having(site: Path) -> None:
    result = compress(str(site))
    assert result.returncode == 0, result.stderr
    assert variants(site) == {
        f"{name}{suffix}"
        for name in ("index.html", "css/app.css", "icon.svg")
        for suffix in (".br", ".zst", ".gz")
    }  # the stale noise.txt.gz is gone, not kept beside a file it is not
    for name, content in (("index.html", PAGE), ("css/app.css", STYLE)):
        path = site / name
        assert brotli.decompress((site / f"{name}.br").read_bytes()) == content
        assert gzip.decompress((site / f"{name}.gz").read_bytes()) == content
        squeezed = (site / f"{name}.zst").read_bytes()
        assert (
            zstandard.ZstdDecompressor().decompressobj().decompress(squeezed) == content
        )
        for suffix in (".br", ".zst", ".gz"):
            assert (
                site / f"{name}{suffix}"
            ).stat().st_mtime_ns == path.stat().st_mtime_ns
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "4 files worth compressing: 3 compressed, 0 up to date, 1 not worth it"
    )
    assert lines[1].startswith("  br    3 written, ")
    assert lines[1].endswith("; 1 not worth it")


async def test_the_server_sends_what_compress_wrote(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    assert compress(str(site)).returncode == 0
    age(*site.rglob("*"))
    app = web.Application()
    add_static(app, "/", site)
    client = await aiohttp_client(app)
    for coding in ("br", "zstd", "gzip"):
        async with client.get(
            "/index.html", headers={"Accept-Encoding": coding}, auto_decompress=False
        ) as resp:
            assert resp.headers["Content-Encoding"] == coding
            suffix = {"br": ".br", "zstd": ".zst", "gzip": ".gz"}[coding]
            assert await resp.read() == (site / f"index.html{suffix}").read_bytes()


def test_a_rerun_compresses_only_what_changed(site: Path) -> None:
    assert compress(str(site)).returncode == 0
    before = {name: (site / name).stat().st_ino for name in variants(site)}
    result = compress(str(site))
    assert result.stdout.splitlines()[0] == (
        "4 files worth compressing: 0 compressed, 3 up to date, 1 not worth it"
    )
    assert {name: (site / name).stat().st_ino for name in variants(site)} == before
    # Changed in place, its mtime put back as cp -p does: its ctime still tells.
    stat = (site / "css" / "app.css").stat()
    (site / "css" / "app.css").write_bytes(STYLE.upper())
    os.utime(site / "css" / "app.css", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    result = compress(str(site))
    assert result.stdout.splitlines()[0] == (
        "4 files worth compressing: 1 compressed, 2 up to date, 1 not worth it"
    )
    after = {name: (site / name).stat().st_ino for name in variants(site)}
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {"css/app.css.br", "css/app.css.zst", "css/app.css.gz"}
    assert gzip.decompress((site / "css" / "app.css.gz").read_bytes()) == STYLE.upper()


def test_without_the_compressors_it_says_what_to_install(
    site: Path, tmp_path: Path
) -> None:
    # Simulated: a brotli and a zstandard that fail to import, as where the extra
    # is not installed (this machine has both).
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("brotli", "zstandard"):
        (blocked / f"{name}.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(blocked), *sys.path))}
    result = compress(str(site), env=env)
    if "compression.zstd" in sys.modules or sys.version_info >= (3, 14):
        pytest.skip("this Python has zstd of its own")
    assert result.returncode == 2
    assert "pip install 'aiohttp-conditional[compress]'" in result.stderr
    assert "--codings gzip" in result.stderr
    assert variants(site) == {"noise.txt.gz"}  # nothing written
    result = compress(str(site), "--codings", "gzip", env=env)
    assert result.returncode == 0, result.stderr
    assert "index.html.gz" in variants(site)


def test_a_progress_bar_on_a_terminal(site: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "aiohttp_conditional", "compress", str(site)],
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=120,
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert process.returncode == 0
    assert b"4/4" in shown and b"file" in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--codings", "br,deflate"), "name codings among br, zstd, gzip"),
        (("--min-size", "-1"), "'-1' is not a size in bytes"),
    ],
)
def test_bad_options_are_usage_errors(
    site: Path, args: tuple[str, ...], message: str
) -> None:
    result = compress(str(site), *args)
    assert result.returncode == 2
    assert message in result.stderr.splitlines()[-1]
    result = compress(str(site / "nope"))
    assert result.returncode == 2
    assert "is not a directory" in result.stderr


def test_one_file_that_fails_stops_nothing_else(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "a.css").write_bytes(STYLE)
    (root / "b.css").write_bytes(STYLE)
    (root / "b.css.gz").mkdir()  # where its variant would go
    long_name = "x" * 250 + ".css"  # legal; its variant's name is not
    (root / long_name).write_bytes(STYLE)
    (root / "font.ttf").write_bytes(b"\0\1glyf" * 400)  # by name: mimetypes has none
    result = compress(str(root))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{root / 'b.css'}: " in result.stderr
    assert "a.css.gz" in variants(root) and "font.ttf.br" in variants(root)
    assert result.stdout.splitlines()[0].endswith(", 2 failed")
    assert not [path for path in root.iterdir() if path.name.startswith(".")]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")
async def test_variants_written_as_root_belong_to_their_files_owner(
    aiohttp_client: AiohttpClient, unprivileged_executor: None
) -> None:
    # A site owned by another user and served as that user (here: the executor's
    # threads take nobody's file identity), compressed by root.
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        site.chmod(0o755)
        (site / "css").mkdir(mode=0o755)
        (site / "css" / "app.css").write_bytes(STYLE)
        await _served_as_nobody(aiohttp_client, site)


async def _served_as_nobody(aiohttp_client: AiohttpClient, site: Path) -> None:
    style = site / "css" / "app.css"
    os.chown(style, 65534, 65534)
    style.chmod(0o600)
    assert compress(str(site)).returncode == 0
    for suffix in (".br", ".zst", ".gz"):
        variant = site / "css" / f"app.css{suffix}"
        assert (variant.stat().st_uid, variant.stat().st_gid) == (65534, 65534)
        assert variant.stat().st_mode & 0o777 == 0o600
    age(*site.rglob("*"))
    app = web.Application()
    add_static(app, "/", site)
    client = await aiohttp_client(app)
    async with client.get("/css/app.css", headers={"Accept-Encoding": "gzip"}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == "gzip"
