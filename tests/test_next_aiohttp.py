"""The keyword arguments of aiohttp's next release, taken with the same meaning.

aiohttp's development branch adds ``text_charset`` to ``FileResponse`` and
``add_static`` and renames ``add_static``'s ``follow_symlinks`` to
``break_symlink_sandbox``; code written for it runs unchanged against ours.  Where
the installed aiohttp has the argument too, the same test runs against it.
"""

from __future__ import annotations

import gzip
import inspect
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.pytest_plugin import AiohttpClient

from aiohttp_conditional import ConditionalFileResponse, add_static

from .conftest import age

TIMEOUT = aiohttp.ClientTimeout(total=20)
UPSTREAM_HAS_TEXT_CHARSET = (
    "text_charset" in inspect.signature(web.FileResponse).parameters
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "page.html").write_bytes(b"<p>caf\xc3\xa9</p>\n")
    (root / "notes.txt").write_bytes(b"notes\n")
    (root / "style.css").write_bytes(b"body {}\n" * 2000)
    (root / "style.css.gz").write_bytes(gzip.compress(b"body {}\n" * 2000))
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "data.unknownext").write_bytes(b"\x00\x01")
    (root / "404.html").write_bytes(b"<h1>not here</h1>\n")
    (tmp_path / "outside.txt").write_bytes(b"outside\n")
    (root / "link").symlink_to(tmp_path / "outside.txt")
    age(*root.iterdir(), tmp_path / "outside.txt")
    return root


EXPECTED_TYPES = [
    ("page.html", "text/html; charset=utf-8"),
    ("notes.txt", "text/plain; charset=utf-8"),
    ("logo.png", "image/png"),
    ("data.unknownext", "application/octet-stream"),
]


@pytest.mark.parametrize(
    "impl",
    [
        pytest.param(
            web.FileResponse,
            id="upstream",
            marks=pytest.mark.skipif(
                not UPSTREAM_HAS_TEXT_CHARSET, reason="this aiohttp has no text_charset"
            ),
        ),
        pytest.param(ConditionalFileResponse, id="conditional"),
    ],
)
@pytest.mark.parametrize(("name", "content_type"), EXPECTED_TYPES)
async def test_text_charset_names_the_charset_of_text_files(
    aiohttp_client: AiohttpClient,
    site: Path,
    impl: Any,
    name: str,
    content_type: str,
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = impl(site / name, text_charset="utf-8")
        return response

    app = web.Application()
    app.router.add_get("/f", handler)
    client = await aiohttp_client(app)
    async with client.get("/f", timeout=TIMEOUT) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == content_type


async def test_text_charset_positionally_and_where_the_caller_set_a_type(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.query.get("typed"):
            return ConditionalFileResponse(
                site / "notes.txt",
                headers={"Content-Type": "text/markdown"},
                text_charset="utf-8",
            )
        # (path, chunk_size, status, reason, headers, text_charset), as upstream.
        return ConditionalFileResponse(
            site / "style.css", 65536, 200, None, None, "iso-8859-1"
        )

    app = web.Application()
    app.router.add_get("/f", handler)
    client = await aiohttp_client(app)
    async with client.get(
        "/f", headers={"Accept-Encoding": "gzip"}, timeout=TIMEOUT
    ) as resp:
        # A variant is the file's type, in its coding: the charset is the file's.
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Type"] == "text/css; charset=iso-8859-1"
        etag = resp.headers["ETag"]
    async with client.get(
        "/f", headers={"Accept-Encoding": "gzip", "If-None-Match": etag}
    ) as resp:
        assert resp.status == 304
        assert "Content-Type" not in resp.headers
    async with client.get("/f?typed=1", timeout=TIMEOUT) as resp:
        assert resp.headers["Content-Type"] == "text/markdown"  # the caller's, kept


async def test_text_charset_on_the_static_route_and_its_pages(
    aiohttp_client: AiohttpClient, site: Path
) -> None:
    app = web.Application()
    add_static(app, "/s", site, text_charset="utf-8", not_found="404.html")
    client = await aiohttp_client(app)
    for name, content_type in EXPECTED_TYPES:
        async with client.get(f"/s/{name}", timeout=TIMEOUT) as resp:
            assert resp.headers["Content-Type"] == content_type
    async with client.get("/s/missing", timeout=TIMEOUT) as resp:
        assert resp.status == 404
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    async with client.get(
        "/s/style.css",
        headers={"Range": "bytes=0-0,100-100", "Accept-Encoding": "identity"},
        timeout=TIMEOUT,
    ) as resp:
        assert resp.status == 206
        assert b"Content-Type: text/css; charset=utf-8" in await resp.read()


@pytest.mark.parametrize(
    ("options", "status"),
    [
        ({"break_symlink_sandbox": True}, 200),
        ({"break_symlink_sandbox": False}, 404),
        ({"follow_symlinks": True}, 200),
        ({"follow_symlinks": True, "break_symlink_sandbox": True}, 200),
        ({}, 404),
    ],
)
async def test_break_symlink_sandbox_is_follow_symlinks(
    aiohttp_client: AiohttpClient,
    site: Path,
    options: dict[str, bool],
    status: int,
) -> None:
    app = web.Application()
    add_static(app, "/s", site, **options)
    client = await aiohttp_client(app)
    async with client.get("/s/link", timeout=TIMEOUT) as resp:
        assert resp.status == status
        if status == 200:
            assert await resp.read() == b"outside\n"


def test_options_that_disagree_or_cannot_be_sent_fail_where_given(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match="disagree"):
        add_static(
            web.Application(),
            "/s",
            tmp_path,
            follow_symlinks=True,
            break_symlink_sandbox=False,
        )
    for charset in ("utf 8", "utf-8\r\nX-A: b", "", 8):
        with pytest.raises(ValueError, match="text_charset"):
            ConditionalFileResponse(tmp_path, text_charset=charset)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="text_charset"):
            add_static(web.Application(), "/s", tmp_path, text_charset=charset)
