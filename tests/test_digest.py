"""RFC 9530 Repr-Digest, checked against hashlib through real servers."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.pytest_plugin import AiohttpClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiohttp_conditional import ConditionalFileResponse, add_static
from aiohttp_conditional._digest import refuses_sha256, repr_digest
from aiohttp_conditional._etags import content_hash

from .conftest import Client, CountingExecutor, age

TIMEOUT = aiohttp.ClientTimeout(total=20)
CONTENT = bytes(range(256)) * 40  # 10 KiB, read ahead
BIG = os.urandom(300_000)  # streamed from the open file


def sha256_field(content: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(content).digest()).decode()}:"


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        (None, False),
        ("", False),
        ("sha-256=0", True),
        ("sha-256=10", False),
        ("sha-512=10, sha-256=0", True),
        ("sha-512=10,sha-256=0", True),
        ("sha-512=3", False),  # a hint: a digest may be sent unasked
        ("sha-256=0, sha-256=3", False),  # the last value of a key counts
        ("sha-256=3, sha-256=0", True),
        ("sha-256=0;p=1", True),  # parameters mean nothing here
        ("sha-256", False),  # not an Integer: the field is ignored
        ("sha-256=0, ", False),  # an empty member: not a Dictionary
        ('a="x,sha-256=0"', False),
        ("SHA-256=0", False),  # keys are lowercase: not this key
        ("sha-256=00", True),
        ("sha-256=-0", True),
        ("sha-256=0.0", False),
        ("sha-256=0; q=1", True),  # RFC 8941: spaces after ";"
        ('sha-256=0;x="a,b"', True),  # a comma inside a string
        ('a="x,y", sha-256=0', True),
        (f"{'k' * 100}=1, sha-256=0", True),  # keys have no length limit
        ("a=(1 2);p, sha-256=0", True),  # an inner list
        ("sha-256=?1", False),  # a Boolean is no preference
        ("sha-256=0,,a=1", False),  # an empty member: ignored whole
        ("sha-256=0 ;q=1", False),  # no space before ";"
        ("sha-256=0" + ", a=1" * 2000, False),  # too long to read: ignored
    ],
)
def test_want_repr_digest(value: str | None, refused: bool) -> None:
    assert refuses_sha256(value) is refused


def test_repr_digest_is_standard_base64_of_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "f"
    # Bytes whose hash has "-" and "_" in URL-safe base64, "+" and "/" in standard.
    for n in range(200):
        content = str(n).encode()
        encoded = base64.b64encode(hashlib.sha256(content).digest()).decode()
        if "+" in encoded and "/" in encoded:
            break
    path.write_bytes(content)
    age(path)
    found = content_hash(str(path), path.stat())
    assert found is not None
    assert repr_digest(found) == sha256_field(content)


async def serve(aiohttp_client: AiohttpClient, path: Path, **options: Any) -> Client:
    async def handler(request: web.Request) -> web.StreamResponse:
        return ConditionalFileResponse(path, **options)

    app = web.Application()
    app.router.add_route("*", "/f", handler)
    return await aiohttp_client(app)


async def get(
    client: Client, path: str = "/f", method: str = "GET", **headers: str
) -> tuple[int, str | None, bytes]:
    fields = {name.replace("_", "-"): value for name, value in headers.items()}
    async with client.request(
        method, path, headers=fields, timeout=TIMEOUT, auto_decompress=False
    ) as resp:
        return resp.status, resp.headers.get("Repr-Digest"), await resp.read()


@pytest.mark.parametrize("content", [CONTENT, BIG], ids=["read-ahead", "streamed"])
async def test_every_200_206_and_head_carries_the_digest_of_the_whole_file(
    aiohttp_client: AiohttpClient, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    age(path)
    client = await serve(aiohttp_client, path, digest=True)
    whole = sha256_field(content)
    assert await get(client) == (200, whole, content)
    assert await get(client, method="HEAD") == (200, whole, b"")
    assert await get(client, range="bytes=10-19") == (206, whole, content[10:20])
    status, digest, body = await get(client, range="bytes=0-0,5-5")
    assert (status, digest) == (206, whole)
    assert b"multipart/byteranges" not in body and len(body) > 2
    # Not where no representation is sent: 304, 412, 416.
    async with client.get("/f") as resp:
        etag = resp.headers["ETag"]
    assert (await get(client, if_none_match=etag))[:2] == (304, None)
    assert (await get(client, if_match='"other"'))[:2] == (412, None)
    assert (await get(client, range="bytes=999999999-"))[:2] == (416, None)


async def test_a_variant_carries_the_digest_of_its_own_bytes(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(CONTENT)
    squeezed = gzip.compress(CONTENT, mtime=0)
    (tmp_path / "app.js.gz").write_bytes(squeezed)
    age(path, tmp_path / "app.js.gz")
    client = await serve(aiohttp_client, path, digest=True)
    got = await get(client, accept_encoding="gzip")
    assert got == (200, sha256_field(squeezed), squeezed)
    got = await get(client, accept_encoding="gzip", range="bytes=0-9")
    assert got == (206, sha256_field(squeezed), squeezed[:10])
    got = await get(client, accept_encoding="identity")
    assert got == (200, sha256_field(CONTENT), CONTENT)


async def test_no_digest_for_a_file_not_yet_stable(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    # A second write of the same size within one clock tick could still share the
    # first one's identity, and so its cached hash.
    path = tmp_path / "fresh.txt"
    path.write_bytes(CONTENT)
    client = await serve(aiohttp_client, path, digest=True)
    assert await get(client) == (200, None, CONTENT)
    age(path)
    assert await get(client) == (200, sha256_field(CONTENT), CONTENT)


@pytest.mark.parametrize(
    ("options", "want", "sent"),
    [
        ({"digest": False}, None, False),
        # The deployer's choice: asking starts no reads.
        ({"digest": False}, "sha-256=10", False),
        ({"digest": True}, None, True),
        ({"digest": True}, "sha-512=10", True),
        ({"digest": True}, "sha-256=0", False),
        ({"digest": True}, "sha-512=10, sha-256=0", False),
        ({"digest": True}, "sha-256", True),  # malformed: ignored
        ({"etag": "content"}, None, True),  # the hash is at hand
        ({"etag": "content"}, "sha-256=0", False),
    ],
)
async def test_when_a_digest_is_sent(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    options: dict[str, Any],
    want: str | None,
    sent: bool,
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(CONTENT)
    age(path)
    client = await serve(aiohttp_client, path, **options)
    headers = {} if want is None else {"want_repr_digest": want}
    status, digest, _ = await get(client, **headers)
    assert status == 200
    assert digest == (sha256_field(CONTENT) if sent else None)


async def test_the_static_route_sends_digests_and_hashes_once_per_version(
    aiohttp_client: AiohttpClient, tmp_path: Path, executor: CountingExecutor
) -> None:
    (tmp_path / "a.txt").write_bytes(CONTENT)
    age(tmp_path / "a.txt")
    app = web.Application()
    add_static(app, "/s", tmp_path, digest=True, use_executor=True)
    client = await aiohttp_client(app)
    for _ in range(3):
        assert await get(client, "/s/a.txt") == (200, sha256_field(CONTENT), CONTENT)
    assert executor.jobs.count("executor_job") == 3  # one job a request, no more
    # A new version, its mtime put back as cp -p does: a new digest, its own.
    stat = (tmp_path / "a.txt").stat()
    changed = CONTENT[::-1]
    (tmp_path / "a.txt").write_bytes(changed)
    os.utime(tmp_path / "a.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    age(tmp_path / "a.txt")
    assert await get(client, "/s/a.txt") == (200, sha256_field(changed), changed)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_a_bad_digest_value_fails_where_given(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ValueError, match="digest"):
        ConditionalFileResponse(tmp_path / "f", digest=value)
    with pytest.raises(ValueError, match="digest"):
        add_static(web.Application(), "/s", tmp_path, digest=value)


# A file changed in the ways files change, with an old validator's worth of time
# between some of the changes: every digest sent is the hash of the bytes sent.
_CHANGES = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.binary(min_size=64, max_size=64)),
        st.tuples(st.just("write-keeping-mtime"), st.binary(min_size=64, max_size=64)),
        st.tuples(st.just("replace"), st.binary(min_size=16, max_size=80)),
        st.tuples(st.just("get"), st.sampled_from(["", "bytes=3-9", "bytes=-5"])),
        st.tuples(st.just("age"), st.none()),
    ),
    max_size=8,
)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(changes=_CHANGES)
async def test_no_digest_is_ever_sent_that_does_not_match_the_bytes(
    aiohttp_client: AiohttpClient,
    tmp_path_factory: pytest.TempPathFactory,
    changes: Any,
) -> None:
    root = tmp_path_factory.mktemp("digests")
    path = root / "f.bin"
    content = b"first version, sixty-four bytes long, written before all else.\n"
    path.write_bytes(content)
    age(path)
    client = await serve(aiohttp_client, path, digest=True)
    for change, value in [*changes, ("get", "")]:
        if change in ("write", "write-keeping-mtime"):
            before = path.stat()
            content = value
            path.write_bytes(content)
            if change == "write-keeping-mtime":
                os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        elif change == "replace":
            content = value
            (root / "new").write_bytes(content)
            os.replace(root / "new", path)
        elif change == "age":
            age(path)
        else:
            headers = {"range": value} if value else {}
            status, digest, body = await get(client, **headers)
            expected = {
                "": content,
                "bytes=3-9": content[3:10],
                "bytes=-5": content[-5:],
            }
            assert (status, body) == (206 if value else 200, expected[value])
            if digest is not None:
                assert digest == sha256_field(content)


async def test_the_digest_is_made_from_the_file_opened_to_send_it(
    aiohttp_client: AiohttpClient, tmp_path: Path, opened: list[str]
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(BIG)
    age(path)
    client = await serve(aiohttp_client, path, digest=True, use_executor=True)
    opened.clear()  # the write above
    assert await get(client) == (200, sha256_field(BIG), BIG)
    assert opened == [str(path)]  # one open: hashed, then sent
    async with client.get("/f") as resp:
        etag = resp.headers["ETag"]
    opened.clear()
    assert (await get(client, if_none_match=etag))[:2] == (304, None)
    assert opened == []  # a 304 opens nothing, digest or not


async def test_no_digest_where_aiohttp_compresses_the_body(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    # Another representation, whose bytes were never hashed (RFC 9530 §3).
    path = tmp_path / "page.html"
    path.write_bytes(CONTENT)
    age(path)

    @web.middleware
    async def compress(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        response.enable_compression()
        return response

    app = web.Application(middlewares=[compress])
    add_static(app, "/s", tmp_path, etag="content")
    client = await aiohttp_client(app)
    async with client.get("/s/page.html", headers={"Accept-Encoding": "deflate"}) as r:
        assert r.headers["Content-Encoding"] == "deflate"
        assert "Repr-Digest" not in r.headers
        assert await r.read() == CONTENT


async def test_the_404_page_carries_no_digest(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    (tmp_path / "404.html").write_bytes(b"<h1>not here</h1>\n")
    age(tmp_path / "404.html")
    app = web.Application()
    add_static(app, "/s", tmp_path, digest=True, not_found="404.html")
    client = await aiohttp_client(app)
    status, digest, body = await get(client, "/s/missing")
    assert (status, digest, body) == (404, None, b"<h1>not here</h1>\n")


async def test_a_version_is_hashed_once_by_requests_at_once(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as file:
        file.truncate(32 * 1024 * 1024)  # sparse: no disk to fill
    age(big)
    read = 0
    real_pread = os.pread

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        nonlocal read
        chunk = real_pread(fd, size, offset)
        read += len(chunk)
        return chunk

    monkeypatch.setattr(os, "pread", counting_pread)
    client = await serve(aiohttp_client, big, digest=True, use_executor=True)
    answers = await asyncio.gather(*(get(client, range="bytes=0-0") for _ in range(6)))
    assert {(status, body) for status, _, body in answers} == {(206, b"\0")}
    assert len({digest for _, digest, _ in answers}) == 1
    # One whole read for the hash (and a byte for each answer), not six.
    assert read < 2 * big.stat().st_size
