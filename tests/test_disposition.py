"""Content-Disposition: names that clients save as meant, and that can do no harm."""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from hypothesis import given
from hypothesis import strategies as st

from aiohttp_conditional import ConditionalFileResponse
from aiohttp_conditional._disposition import content_disposition

from .conftest import age, serve_in_thread


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("report.pdf", 'attachment; filename="report.pdf"'),
        ("a b.txt", 'attachment; filename="a b.txt"'),
        (
            "Résumé.pdf",
            "attachment; filename=\"Resume.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf",
        ),
        (
            "日本.txt",
            "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt",
        ),
        (
            'say "hi".txt',
            "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt",
        ),
        ("../../etc/passwd", 'attachment; filename="passwd"'),
        ("C:\\Users\\x\\evil.bat", 'attachment; filename="evil.bat"'),
        ("x\r\nSet-Cookie: a=b", 'attachment; filename="x__Set-Cookie: a=b"'),
        ("", 'attachment; filename="download"'),
        (
            "trailing. ",
            'attachment; filename="trailing"',
        ),
        ("..", 'attachment; filename="download"'),
        ("x\u202etxt.exe", 'attachment; filename="x_txt.exe"'),
        (
            "100%2F..%2Fetc.txt",
            'attachment; filename="100_2F.._2Fetc.txt"; '
            "filename*=UTF-8''100%252F..%252Fetc.txt",
        ),
    ],
    ids=[
        "ascii",
        "space",
        "accents",
        "cjk",
        "quotes",
        "path",
        "windows-path",
        "crlf",
        "empty",
        "trailing-dot",
        "dot-dot",
        "right-to-left-override",
        "percent",
    ],
)
def test_content_disposition(filename: str, expected: str) -> None:
    assert content_disposition("attachment", filename) == expected


def test_a_disposition_alone() -> None:
    assert content_disposition("inline", None) == "inline"
    with pytest.raises(ValueError, match="disposition"):
        content_disposition("download", "x.txt")


@given(st.text())
def test_any_name_is_one_safe_field_that_a_real_parser_reads_back(name: str) -> None:
    value = content_disposition("attachment", name)
    # One line of visible ASCII: no field, no line, no byte outside the grammar.
    assert all(" " <= character <= "~" for character in value)
    quoted = value.split('filename="', 1)[1].split('"', 1)[0]
    assert quoted and not set(quoted) & set('"\\/')
    kind, params = parse_content_disposition(value)  # aiohttp's own parser
    assert kind == "attachment"
    # The name offered: its last part, with control, format and separator
    # characters and lone surrogates replaced, no trailing dots or spaces.
    expected = "".join(
        "_"
        if unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp", "Cs")
        else character
        for character in name.replace("\\", "/").rsplit("/", 1)[-1]
    ).rstrip(". ")
    if not expected.strip("."):
        expected = "download"
    assert content_disposition_filename(params, "filename") == expected


async def test_downloads_through_a_real_server(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789")
    age(path)

    async def handler(request: web.Request) -> web.StreamResponse:
        return ConditionalFileResponse(path, filename="Résumé 2026.pdf")

    async def inline(request: web.Request) -> web.StreamResponse:
        return ConditionalFileResponse(path, disposition="inline")

    async def own(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Disposition": "attachment; filename=mine.bin"}
        return ConditionalFileResponse(path, headers=headers, filename="other.bin")

    app = web.Application()
    app.router.add_route("*", "/f", handler)
    app.router.add_get("/inline", inline)
    app.router.add_get("/own", own)
    client = await aiohttp_client(app)
    async with client.get("/f") as resp:
        assert resp.status == 200
        assert resp.content_disposition is not None
        assert resp.content_disposition.type == "attachment"
        assert resp.content_disposition.filename == "Résumé 2026.pdf"
        etag = resp.headers["ETag"]
    async with client.get("/f", headers={"Range": "bytes=2-4"}) as resp:
        assert resp.status == 206
        assert resp.content_disposition is not None
    async with client.head("/f") as resp:
        assert resp.content_disposition is not None
    # A 304 carries no representation metadata beyond what caches need (§15.4.5).
    async with client.get("/f", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304
        assert "Content-Disposition" not in resp.headers
    async with client.get("/inline") as resp:
        assert resp.headers["Content-Disposition"] == 'inline; filename="data.bin"'
    async with client.get("/own") as resp:
        assert resp.headers["Content-Disposition"] == "attachment; filename=mine.bin"
        etag = resp.headers["ETag"]
    # The caller's own field too.
    async with client.get("/own", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304
        assert "Content-Disposition" not in resp.headers


def test_bad_options_fail_where_they_are_given(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="disposition"):
        ConditionalFileResponse(tmp_path, disposition="download")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="filename"):
        ConditionalFileResponse(tmp_path, filename=b"x.pdf")  # type: ignore[arg-type]


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
@pytest.mark.parametrize(
    ("filename", "saved"),
    [("Résumé.pdf", "Resume.pdf"), ("../../../tmp/evil.txt", "evil.txt")],
    ids=["accents", "path"],
)
def test_curl_saves_under_the_name_given(
    tmp_path: Path, filename: str, saved: str
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789")

    async def handler(request: web.Request) -> web.StreamResponse:
        return ConditionalFileResponse(path, filename=filename)

    app = web.Application()
    app.router.add_get("/f", handler)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with serve_in_thread(app) as port:
        subprocess.run(
            ["curl", "-sS", "-O", "-J", f"http://127.0.0.1:{port}/f"],
            cwd=downloads,
            check=True,
            timeout=30,
        )
    assert [p.name for p in downloads.iterdir()] == [saved]
    assert (downloads / saved).read_bytes() == b"0123456789"
