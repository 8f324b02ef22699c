"""Content-derived and caller-made entity-tags, through real servers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aiohttp_conditional import ConditionalFileResponse, add_static
from aiohttp_conditional._etags import checked_tag, content_hash

from .conftest import age

TIMEOUT = aiohttp.ClientTimeout(total=20)
CONTENT = b"the same bytes on every replica\n" * 100


def sha256_tag(content: bytes) -> str:
    return (
        '"' + base64.urlsafe_b64encode(hashlib.sha256(content).digest()).decode() + '"'
    )


async def etag_of(
    client: Any, path: str = "/s/app.js", **headers: str
) -> tuple[int, str]:
    fields = {name.replace("_", "-"): value for name, value in headers.items()}
    async with client.get(
        path, headers=fields, timeout=TIMEOUT, auto_decompress=False
    ) as resp:
        await resp.read()
        return resp.status, resp.headers.get("ETag", "")


async def test_replicas_with_different_mtimes_agree_on_content_etags(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    replicas = [tmp_path / "one", tmp_path / "two"]
    for number, root in enumerate(replicas):
        root.mkdir()
        (root / "app.js").write_bytes(CONTENT)
        # Deployed at different times: different mtimes, so different default ETags.
        os.utime(root / "app.js", ns=(10**18 + number * 10**9,) * 2)
    age(*(root / "app.js" for root in replicas))
    clients = []
    for root in replicas:
        app = web.Application()
        add_static(app, "/s", root, etag="content")
        clients.append(await aiohttp_client(app))
    tags = [(await etag_of(client))[1] for client in clients]
    assert tags[0] == tags[1] == sha256_tag(CONTENT)
    # A client revalidating at the other replica gets its 304.
    status, _ = await etag_of(clients[1], If_None_Match=tags[0])
    assert status == 304


async def test_content_etag_is_computed_once_per_version(
    aiohttp_client: Any, tmp_path: Path, opened: list[str]
) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(CONTENT)
    age(path)
    app = web.Application()
    add_static(app, "/s", tmp_path, etag="content")
    client = await aiohttp_client(app)
    status, tag = await etag_of(client)
    assert status == 200
    opened.clear()
    for _ in range(3):
        assert await etag_of(client, If_None_Match=tag) == (304, tag)
    assert opened == [], "a cached hash: no 304 opens the file"


async def test_content_etag_changes_with_the_bytes_whatever_the_mtime(
    serve: Any, tmp_path: Path
) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(CONTENT)
    os.utime(path, ns=(10**18, 10**18))
    age(path)
    client = await serve(ConditionalFileResponse, path, etag="content")
    _, tag = await etag_of(client, "/f")
    # Same size, same preserved mtime, other bytes: what cp -p of another build does.
    path.write_bytes(CONTENT.upper())
    os.utime(path, ns=(10**18, 10**18))
    age(path)
    status, new_tag = await etag_of(client, "/f", If_None_Match=tag)
    assert status == 200
    assert new_tag == sha256_tag(CONTENT.upper()) != tag


async def test_each_variant_has_its_own_content_etag(
    serve: Any, tmp_path: Path
) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(CONTENT)
    (tmp_path / "app.js.gz").write_bytes(b"gzipped")
    age(path, tmp_path / "app.js.gz")
    client = await serve(ConditionalFileResponse, path, etag="content")
    _, plain = await etag_of(client, "/f", Accept_Encoding="identity")
    _, gzipped = await etag_of(client, "/f", Accept_Encoding="gzip")
    assert plain == sha256_tag(CONTENT)
    assert gzipped == sha256_tag(b"gzipped")[:-1] + '-gzip"'


async def test_a_caller_etag_function(serve: Any, tmp_path: Path) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(CONTENT)
    age(path)
    seen: list[tuple[str, int]] = []

    def release_tag(file: str, st: os.stat_result) -> str:
        seen.append((file, st.st_size))
        return "release-42"

    client = await serve(ConditionalFileResponse, path, etag=release_tag)
    assert await etag_of(client, "/f") == (200, '"release-42"')
    assert await etag_of(client, "/f", If_None_Match='"release-42"') == (
        304,
        '"release-42"',
    )
    assert seen == [(str(path), len(CONTENT))] * 2


async def test_a_caller_etag_function_gives_each_variant_a_tag_of_its_own(
    serve: Any, tmp_path: Path
) -> None:
    # README's example: one release number for every file, and so for its variants.
    path = tmp_path / "app.js"
    path.write_bytes(CONTENT)
    (tmp_path / "app.js.gz").write_bytes(gzip.compress(CONTENT))
    age(path, tmp_path / "app.js.gz")
    client = await serve(
        ConditionalFileResponse, path, etag=lambda path, st: "release-42"
    )
    identity = {"Accept_Encoding": "identity"}
    assert await etag_of(client, "/f", **identity) == (200, '"release-42"')
    assert await etag_of(client, "/f", Accept_Encoding="gzip") == (
        200,
        '"release-42-gzip"',
    )
    # The gzip copy's tag from a client that now refuses gzip: not its copy (§8.8.3.3).
    refused = await etag_of(client, "/f", If_None_Match='"release-42-gzip"', **identity)
    assert refused == (200, '"release-42"')
    # A download of the identity bytes resumed by a client that now accepts gzip:
    # never a 206 of gzip bytes to splice onto identity bytes.
    headers = {
        "If-Range": '"release-42"',
        "Range": "bytes=10-",
        "Accept-Encoding": "gzip",
    }
    async with client.get(
        "/f", headers=headers, timeout=TIMEOUT, auto_decompress=False
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await resp.read()) == CONTENT


def test_no_hash_of_a_file_changed_within_the_second(tmp_path: Path) -> None:
    # Where timestamps are coarse, a second write of the same size within one tick
    # keeps the identity: a hash taken now could be sent for the next version.
    path = tmp_path / "app.js"
    path.write_bytes(CONTENT)
    assert content_hash(str(path), path.stat()) is None
    age(path)
    assert content_hash(str(path), path.stat()) == sha256_tag(CONTENT)[1:-1]


def test_an_etag_function_must_return_an_opaque_tag(tmp_path: Path) -> None:
    st = os.stat(tmp_path)
    assert checked_tag(lambda path, st: "abc-1", str(tmp_path), st) == '"abc-1"'
    assert checked_tag(lambda path, st: None, str(tmp_path), st) is None
    for bad in ('a"b', "with space", "tab\t"):

        def returns_bad(path: str, st: os.stat_result, bad: str = bad) -> str:
            return bad

        with pytest.raises(ValueError, match="not an opaque-tag"):
            checked_tag(returns_bad, str(tmp_path), st)
    with pytest.raises(ValueError, match="etag must be"):
        ConditionalFileResponse(tmp_path, etag="sha1")  # type: ignore[arg-type]


async def test_a_file_changed_within_the_second_gets_no_content_etag(
    serve: Any, tmp_path: Path
) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(CONTENT)
    client = await serve(ConditionalFileResponse, path, etag="content")
    status, tag = await etag_of(client, "/f")
    assert (status, tag) == (200, "")


async def test_a_fifo_swapped_in_before_hashing_blocks_no_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(CONTENT)
    st = path.stat()  # what the job saw
    path.unlink()
    os.mkfifo(path)  # opening it to read, without O_NONBLOCK, waits for a writer
    hashed = asyncio.to_thread(content_hash, str(path), st)
    try:
        assert await asyncio.wait_for(hashed, 10) is None
    finally:
        with contextlib.suppress(OSError):  # a writer frees a thread stuck in open()
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
