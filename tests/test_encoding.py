"""Accept-Encoding and precompressed variants, pure and through a real server."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiohttp_conditional import ConditionalFileResponse, add_static
from aiohttp_conditional._encoding import (
    DEFAULT_ORDER,
    MAX_ACCEPT_ENCODING,
    parse_accept_encoding,
    preferred_codings,
)

from .conftest import age, upstream_differs

Serve = Callable[..., Any]
TIMEOUT = aiohttp.ClientTimeout(total=20)
ORIGINAL = b"body { color: red }\n" * 30


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gzip, deflate, br, zstd", ("br", "zstd", "gzip")),
        ("gzip, deflate, br", ("br", "gzip")),
        ("gzip", ("gzip",)),
        ("GZIP", ("gzip",)),
        ("x-gzip", ("gzip",)),
        ("gzip;q=0", ()),
        ("gzip; q=0.000, br", ("br",)),
        ("gzip;q=1, br;q=0.5", ("gzip", "br")),
        ("gzip;q=0.8, br;q=0.8, zstd;q=0.9", ("zstd", "br", "gzip")),
        ("*", ("br", "zstd", "gzip")),
        ("*;q=0.5, gzip;q=0", ("br", "zstd")),
        ("br;q=0.5, identity", ()),
        ("br, identity;q=0.5", ("br",)),
        ("identity", ()),
        ("", ()),
        ("deflate, compress", ()),
        ("gzip;q=2, br;q=0.5x, zstd;level=1, br", ("br",)),
        (",,, gzip ,", ("gzip",)),
    ],
)
def test_preferred_codings(value: str, expected: tuple[str, ...]) -> None:
    assert preferred_codings(value, DEFAULT_ORDER) == expected


def test_no_accept_encoding_gets_the_original() -> None:
    assert preferred_codings(None, DEFAULT_ORDER) == ()


def test_server_order_breaks_ties() -> None:
    assert preferred_codings("gzip, br", ("gzip", "br")) == ("gzip", "br")
    assert preferred_codings("gzip, br", ("gzip",)) == ("gzip",)


def test_a_long_accept_encoding_is_taken_as_absent_and_never_cached() -> None:
    before = parse_accept_encoding.cache_info().currsize
    hostile = "gzip, " + "x;q=0.5, " * (1 << 17)
    assert preferred_codings(hostile, DEFAULT_ORDER) == ()
    assert parse_accept_encoding.cache_info().currsize == before
    longest = "gzip, " + " " * (MAX_ACCEPT_ENCODING - 8) + "br"
    assert len(longest) == MAX_ACCEPT_ENCODING
    assert preferred_codings(longest, DEFAULT_ORDER) == ("br", "gzip")


@given(st.text(max_size=80))
def test_any_accept_encoding_is_read_without_error(value: str) -> None:
    weights = parse_accept_encoding(value)
    assert all(0 <= weight <= 1 for weight in weights.values())
    assert set(preferred_codings(value, DEFAULT_ORDER)) <= set(DEFAULT_ORDER)


def write_variants(directory: Path) -> Path:
    """Write style.css with a .br, a .zst and a .gz beside it, each newer than it."""
    path = directory / "style.css"
    path.write_bytes(ORIGINAL)
    for suffix in (".br", ".zst", ".gz"):
        (directory / f"style.css{suffix}").write_bytes(f"{suffix} bytes".encode())
    return path


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Variants that the read-only tests share, old enough to carry validators."""
    path = write_variants(tmp_path_factory.mktemp("variants"))
    age(*path.parent.iterdir())
    return path


async def fetch(
    client: Any, accept_encoding: str, **headers: str
) -> tuple[int, Any, bytes]:
    # Always sent: without it aiohttp's client would send its own.
    fields = {k.replace("_", "-"): v for k, v in headers.items()}
    fields["Accept-Encoding"] = accept_encoding
    async with client.get(
        "/f", headers=fields, auto_decompress=False, timeout=TIMEOUT
    ) as resp:
        return resp.status, resp.headers, await resp.read()


@pytest.mark.parametrize(
    ("accept_encoding", "body", "encoding"),
    [
        ("gzip, deflate, br, zstd", b".br bytes", "br"),
        ("gzip, zstd", b".zst bytes", "zstd"),
        ("GZIP", b".gz bytes", "gzip"),
        ("x-gzip", b".gz bytes", "gzip"),
        ("*", b".br bytes", "br"),
        ("gzip;q=1, br;q=0.5", b".gz bytes", "gzip"),
        ("deflate", ORIGINAL, None),
    ],
)
async def test_the_preferred_variant_is_sent(
    serve: Serve,
    variants: Path,
    accept_encoding: str,
    body: bytes,
    encoding: str | None,
) -> None:
    client = await serve(ConditionalFileResponse, variants)
    status, headers, got = await fetch(client, accept_encoding)
    assert (status, got) == (200, body)
    assert headers.get("Content-Encoding") == encoding
    assert headers["Content-Type"] == "text/css"
    assert headers["Vary"] == "Accept-Encoding"


@upstream_differs("RFC 9110 §12.5.3: q=0 means not acceptable; upstream sends it")
async def test_q_zero_refuses_a_coding(
    impl: type[ConditionalFileResponse], serve: Serve, variants: Path
) -> None:
    client = await serve(impl, variants)
    status, headers, body = await fetch(client, "gzip;q=0, deflate")
    assert (status, body) == (200, ORIGINAL)
    assert "Content-Encoding" not in headers


async def test_repeated_accept_encoding_lines_are_one_list(
    serve: Serve, variants: Path
) -> None:
    # RFC 9110 §5.3: "br;q=0" and "gzip" on two lines are "br;q=0, gzip".
    client = await serve(ConditionalFileResponse, variants)
    fields = [("Accept-Encoding", "br;q=0"), ("Accept-Encoding", "gzip")]
    async with client.get(
        "/f", headers=fields, auto_decompress=False, timeout=TIMEOUT
    ) as resp:
        assert resp.headers.get("Content-Encoding") == "gzip"
        assert await resp.read() == b".gz bytes"


@pytest.mark.parametrize("auto_decompress", [True, False], ids=["decoded", "raw"])
async def test_several_ranges_of_a_variant_get_the_whole_variant(
    serve: Serve, tmp_path: Path, auto_decompress: bool
) -> None:
    # A Content-Encoding on a multipart/byteranges 206 would claim that the multipart
    # body is compressed: aiohttp's own client then fails to read it.
    path = tmp_path / "data.bin"
    content = os.urandom(2000)
    path.write_bytes(content)
    (tmp_path / "data.bin.gz").write_bytes(gzip.compress(content))
    age(path, tmp_path / "data.bin.gz")
    client = await serve(ConditionalFileResponse, path)
    fields = {"Accept-Encoding": "gzip", "Range": "bytes=0-9,1000-1009"}
    async with client.get(
        "/f", headers=fields, auto_decompress=auto_decompress, timeout=TIMEOUT
    ) as resp:
        assert (resp.status, resp.headers["Content-Encoding"]) == (200, "gzip")
        body = await resp.read()
    assert body == (
        content if auto_decompress else path.with_suffix(".bin.gz").read_bytes()
    )
    # One range of it is still a 206 of the compressed bytes.
    fields["Range"] = "bytes=0-9"
    async with client.get("/f", headers=fields, auto_decompress=False) as resp:
        assert resp.status == 206
        assert await resp.read() == path.with_suffix(".bin.gz").read_bytes()[:10]


async def test_server_order_is_an_option(serve: Serve, variants: Path) -> None:
    client = await serve(
        ConditionalFileResponse, variants, precompressed=("gzip", "br")
    )
    _, headers, body = await fetch(client, "gzip, deflate, br, zstd")
    assert (headers["Content-Encoding"], body) == ("gzip", b".gz bytes")
    client = await serve(ConditionalFileResponse, variants, precompressed=())
    _, headers, body = await fetch(client, "gzip, deflate, br, zstd")
    assert body == ORIGINAL
    assert "Vary" not in headers
    with pytest.raises(ValueError, match="no precompressed variants of deflate"):
        ConditionalFileResponse(variants, precompressed=("deflate",))


async def test_a_variant_older_than_its_file_is_never_sent(
    serve: Serve, tmp_path: Path
) -> None:
    variants = write_variants(tmp_path)
    # The file was rebuilt; its .br and .zst were not.
    variants.write_bytes(b"rebuilt\n")
    os.utime(variants.with_name("style.css.gz"), ns=(variants.stat().st_mtime_ns,) * 2)
    client = await serve(ConditionalFileResponse, variants)
    _, headers, body = await fetch(client, "gzip, deflate, br, zstd")
    assert (headers["Content-Encoding"], body) == ("gzip", b".gz bytes")
    _, headers, body = await fetch(client, "br, zstd")
    assert "Content-Encoding" not in headers
    assert body == b"rebuilt\n"
    assert headers["Vary"] == "Accept-Encoding"


async def test_each_variant_has_its_own_etag(serve: Serve, variants: Path) -> None:
    client = await serve(ConditionalFileResponse, variants)
    tags = set()
    for accept_encoding in ("br", "zstd", "gzip", "identity"):
        _, headers, _ = await fetch(client, accept_encoding)
        tags.add(headers["ETag"])
    assert len(tags) == 4
    # A tag of one variant does not revalidate another.
    _, headers, _ = await fetch(client, "gzip")
    status, _, _ = await fetch(client, "br", If_None_Match=headers["ETag"])
    assert status == 200


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {}, 200),
        ("HEAD", {}, 200),
        ("GET", {"Range": "bytes=0-3"}, 206),
        ("GET", {"If-None-Match": "*"}, 304),
    ],
)
@pytest.mark.parametrize("accept_encoding", ["gzip", "identity", ""])
async def test_vary_on_every_answer_for_a_file_with_variants(
    aiohttp_client: Any,
    variants: Path,
    method: str,
    headers: dict[str, str],
    status: int,
    accept_encoding: str,
) -> None:
    app = aiohttp.web.Application()
    add_static(app, "/s", variants.parent)
    client = await aiohttp_client(app)
    fields = {"Accept-Encoding": accept_encoding, **headers}
    async with client.request(
        method, "/s/style.css", headers=fields, auto_decompress=False, timeout=TIMEOUT
    ) as resp:
        assert resp.status == status
        assert resp.headers["Vary"] == "Accept-Encoding"


async def test_a_variant_stands_for_a_missing_file(
    serve: Serve, tmp_path: Path
) -> None:
    (tmp_path / "only.txt.gz").write_bytes(b"compressed")
    client = await serve(ConditionalFileResponse, tmp_path / "only.txt")
    status, headers, body = await fetch(client, "gzip")
    assert (status, body, headers["Content-Type"]) == (200, b"compressed", "text/plain")
    status, _, _ = await fetch(client, "br")
    assert status == 404
