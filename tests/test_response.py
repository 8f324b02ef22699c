"""ConditionalFileResponse through a real server, side by side with web.FileResponse."""

from __future__ import annotations

import asyncio
import gc
import gzip
import http.client
import os
import re
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

import aiohttp_conditional._jobs
import aiohttp_conditional._lookup
import aiohttp_conditional._send
from aiohttp_conditional import (
    ConditionalFileResponse,
    FileResponseState,
    _encoding,
    _preconditions,
)
from aiohttp_conditional._clock import moment
from aiohttp_conditional._jobs import close_files, closer, run_job
from aiohttp_conditional._kernel import DISK
from aiohttp_conditional._lookup import Asked, Options, look_up
from aiohttp_conditional._response import conditions_of, decided_response

from .conftest import (
    Client,
    CountingExecutor,
    ResponseClass,
    age,
    open_descriptors,
    serve_in_thread,
    upstream_differs,
)

Serve = Callable[..., Any]
NS = 1_000_000_000
S = 1_700_000_000  # Tue, 14 Nov 2023 22:13:20 GMT
HELLO = b"Hello, conditional world!\n" * 40
TIMEOUT = aiohttp.ClientTimeout(
    total=20
)  # a response short of its length fails, not hangs
UPSTREAM_VERSION = tuple(int(part) for part in aiohttp.__version__.split(".")[:3])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files that every read-only test shares, old enough to carry validators."""
    root = tmp_path_factory.mktemp("site")
    (root / "hello.txt").write_bytes(HELLO)
    (root / "empty.txt").write_bytes(b"")
    (root / "data").write_bytes(bytes(range(256)))
    (root / "style.css").write_bytes(b"body { color: red }\n" * 20)
    (root / "style.css.gz").write_bytes(
        gzip.compress((root / "style.css").read_bytes())
    )
    (root / "style.css.br").write_bytes(b"not really brotli")
    (root / "linked.txt").write_bytes(b"plain")
    (root / "elsewhere.gz").write_bytes(gzip.compress(b"plain"))
    (root / "linked.txt.gz").symlink_to(root / "elsewhere.gz")
    (root / "sub").mkdir()
    fractional = root / "fractional.txt"
    fractional.write_bytes(b"fraction")
    os.utime(fractional, ns=(S * NS + 123_456_789, S * NS + 123_456_789))
    age(*root.iterdir())
    return root


async def get(
    client: Client, method: str = "GET", **headers: str
) -> tuple[int, CIMultiDict[str], bytes]:
    """Send one request to /f; return status, headers and body."""
    fields = {name.replace("_", "-"): value for name, value in headers.items()}
    async with client.request(method, "/f", headers=fields, timeout=TIMEOUT) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.read()


# --- 200 and its headers --------------------------------------------------------------


async def test_200_sends_the_file_with_upstreams_headers(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    path = site / "hello.txt"
    client = await serve(impl, path)
    status, headers, body = await get(client)
    assert status == 200
    assert body == HELLO
    assert headers["Content-Type"] == "text/plain"
    assert headers["Content-Length"] == str(len(HELLO))
    assert headers["Accept-Ranges"] == "bytes"
    assert "Content-Encoding" not in headers
    # Same format and value as upstream, so caches primed by web.FileResponse keep hitting.
    st = path.stat()
    assert headers["ETag"] == f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


async def test_last_modified_round_trips_to_304_with_a_fractional_mtime(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "fractional.txt")
    status, headers, _ = await get(client)
    last_modified = headers["Last-Modified"]
    assert parsedate_to_datetime(last_modified) <= parsedate_to_datetime(
        headers["Date"]
    )
    status, headers, body = await get(client, If_Modified_Since=last_modified)
    assert status == 304
    assert body == b""


@upstream_differs("Last-Modified is rounded up, past Date (RFC 9110 §8.8.2.1)")
async def test_last_modified_is_never_later_than_date(
    impl: ResponseClass, serve: Serve, tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x")
    client = await serve(impl, path)
    for _ in range(5):
        # Early in a second, a file changed later in that same second.
        time.sleep(1 - time.time() % 1 + 0.01)
        second = int(time.time())
        os.utime(path, ns=(second * NS + NS // 2, second * NS + NS // 2))
        _, headers, _ = await get(client)
        if second == int(time.time()):
            break  # answered within that second, as the test needs
    else:
        pytest.fail("the machine was too slow for this test, five times over")
    if "Last-Modified" in headers:
        date = parsedate_to_datetime(headers["Date"])
        assert parsedate_to_datetime(headers["Last-Modified"]) <= date


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("page.html", "text/html"),
        ("data", "application/octet-stream"),
        ("photo.JPG", "image/jpeg"),
        ("archive.tar.gz", "application/gzip"),
        ("notes.unknown_ext", "application/octet-stream"),
    ],
)
async def test_content_type_is_guessed_from_the_name(
    impl: ResponseClass, serve: Serve, tmp_path: Path, name: str, content_type: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"x")
    client = await serve(impl, path)
    status, headers, _ = await get(client)
    assert status == 200
    assert headers["Content-Type"] == content_type


async def test_callers_content_type_and_status_are_kept(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(
        impl, site / "hello.txt", status=203, headers={"Content-Type": "text/x-mine"}
    )
    status, headers, body = await get(client)
    assert status == 203
    assert headers["Content-Type"] == "text/x-mine"
    assert body == HELLO


@upstream_differs("RFC 9110 §13.2.1: preconditions only apply to what would be a 2xx")
@pytest.mark.parametrize(
    "field",
    ["If-None-Match", "If-Match", "Range"],
)
async def test_a_callers_error_page_ignores_preconditions_and_range(
    impl: ResponseClass, serve: Serve, site: Path, field: str
) -> None:
    client = await serve(impl, site / "hello.txt", status=404)
    status, headers, body = await get(client)
    assert (status, body) == (404, HELLO)
    value = {"If-None-Match": headers["ETag"], "If-Match": '"nope"'}.get(
        field, "bytes=0-1"
    )
    status, _, body = await get(client, **{field.replace("-", "_"): value})
    assert (status, body) == (404, HELLO)


async def test_head_sends_headers_without_body(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, headers, body = await get(client, "HEAD")
    assert status == 200
    assert headers["Content-Length"] == str(len(HELLO))
    assert body == b""


async def test_empty_file(impl: ResponseClass, serve: Serve, site: Path) -> None:
    client = await serve(impl, site / "empty.txt")
    status, headers, body = await get(client)
    assert status == 200
    assert headers["Content-Length"] == "0"
    assert body == b""


@pytest.mark.parametrize("chunk_size", [7, 256 * 1024])
async def test_without_sendfile_the_body_is_read_in_chunks(
    impl: ResponseClass,
    serve: Serve,
    site: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk_size: int,
) -> None:
    monkeypatch.setattr("aiohttp.web_fileresponse.NOSENDFILE", True)
    monkeypatch.setattr(aiohttp_conditional._send, "NOSENDFILE", True)
    client = await serve(impl, site / "hello.txt", chunk_size=chunk_size)
    status, _, body = await get(client)
    assert status == 200
    assert body == HELLO
    status, _, body = await get(client, Range="bytes=5-1000")
    assert status == 206
    assert body == HELLO[5:1001]


# --- 403 and 404 ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "loop", "too-long", "through-a-file"])
async def test_missing_files_get_404(
    impl: ResponseClass, serve: Serve, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "missing"
    if kind == "loop":
        path.symlink_to(path)
    elif kind == "too-long":
        path = tmp_path / ("x" * 300)
    elif kind == "through-a-file":
        (tmp_path / "file").write_bytes(b"x")
        path = tmp_path / "file" / "inside"
    client = await serve(impl, path)
    status, _, _ = await get(client)
    assert status == 404


async def test_directory_gets_403(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "sub")
    status, _, _ = await get(client)
    assert status == 403


async def test_fifo_gets_403_and_is_never_opened(
    impl: ResponseClass, serve: Serve, tmp_path: Path, opened: list[str]
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    client = await serve(impl, fifo)
    status, _, _ = await get(client)
    assert status == 403
    assert opened == []


@pytest.mark.parametrize("blocked", ["file", "directory"])
@pytest.mark.parametrize(
    "impl",
    [
        pytest.param(
            web.FileResponse,
            marks=pytest.mark.xfail(
                UPSTREAM_VERSION < (3, 11, 10),
                reason="before 3.11.10 upstream sends a 403 with a Content-Length",
            ),
            id="upstream",
        ),
        pytest.param(ConditionalFileResponse, id="conditional"),
    ],
)
async def test_permission_denied_gets_403_and_opens_nothing(
    impl: ResponseClass, serve: Serve, unprivileged_executor: None, blocked: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        (root / "dir").mkdir()
        path = root / "dir" / "secret.txt"
        path.write_bytes(b"secret")
        (path if blocked == "file" else root / "dir").chmod(0)
        client = await serve(impl, path)
        status, _, body = await get(client)
        (root / "dir").chmod(0o755)
    assert status == 403
    assert body == b""


async def test_nul_in_path_gets_404(serve: Serve, tmp_path: Path) -> None:
    client = await serve(ConditionalFileResponse, str(tmp_path / "a\x00b"))
    status, _, _ = await get(client)
    assert status == 404


# --- If-None-Match and If-Modified-Since ----------------------------------------------


@pytest.fixture
async def validators(
    request: pytest.FixtureRequest, serve: Serve, site: Path
) -> tuple[str, str]:
    """The ETag and Last-Modified that the test's implementation gives hello.txt."""
    impl = ConditionalFileResponse
    if "impl" in request.fixturenames:
        impl = request.getfixturevalue("impl")
    client = await serve(impl, site / "hello.txt")
    _, headers, _ = await get(client)
    return headers["ETag"], headers["Last-Modified"]


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"other", {etag}', "*"],
    ids=["strong", "weak", "list", "star"],
)
async def test_if_none_match_gets_304(
    impl: ResponseClass,
    serve: Serve,
    site: Path,
    validators: tuple[str, str],
    if_none_match: str,
) -> None:
    client = await serve(impl, site / "hello.txt")
    value = if_none_match.format(etag=validators[0])
    status, headers, body = await get(client, If_None_Match=value)
    assert status == 304
    assert body == b""
    assert headers["ETag"] == validators[0]


async def test_if_none_match_of_another_tag_gets_200(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, body = await get(client, If_None_Match='"other", W/"else"')
    assert status == 200
    assert body == HELLO


@upstream_differs("RFC 9110 §13.1.2: a match on a method other than GET/HEAD is 412")
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_if_none_match_on_unsafe_method_gets_412(
    impl: ResponseClass, serve: Serve, site: Path, method: str
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, _ = await get(client, method, If_None_Match="*")
    assert status == 412


async def test_if_modified_since_in_the_past_gets_200(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, body = await get(
        client, If_Modified_Since="Sun, 06 Nov 1994 08:49:37 GMT"
    )
    assert status == 200
    assert body == HELLO


@pytest.mark.parametrize(
    "date",
    ["Sun, 06 Nov 2994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT"],
    ids=["imf-fixdate", "rfc850"],
)
async def test_if_modified_since_in_the_future_gets_304(
    impl: ResponseClass, serve: Serve, site: Path, date: str
) -> None:
    client = await serve(impl, site / "hello.txt")
    future = date if "2994" in date else "Sun Nov  6 08:49:37 2994"
    status, _, _ = await get(client, If_Modified_Since=future)
    assert status == 304


async def test_invalid_if_modified_since_is_ignored(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, _ = await get(client, If_Modified_Since="not a date")
    assert status == 200


@upstream_differs("RFC 9110 §13.1.3: a field with more than one member is ignored")
async def test_repeated_if_modified_since_is_ignored(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "hello.txt")
    headers = [("If-Modified-Since", "Sun, 06 Nov 2994 08:49:37 GMT")] * 2
    async with client.get("/f", headers=headers) as resp:
        assert resp.status == 200


@upstream_differs("RFC 9110 §13.1.3: If-Modified-Since is only for GET and HEAD")
async def test_if_modified_since_on_post_is_ignored(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "hello.txt")
    future = "Sun, 06 Nov 2994 08:49:37 GMT"
    status, _, body = await get(client, "POST", If_Modified_Since=future)
    assert status == 200
    assert body == HELLO


async def test_if_none_match_wins_over_if_modified_since(
    impl: ResponseClass, serve: Serve, site: Path, validators: tuple[str, str]
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, _ = await get(
        client, If_None_Match='"other"', If_Modified_Since=validators[1]
    )
    assert status == 200


# --- If-Match and If-Unmodified-Since -------------------------------------------------


@pytest.mark.parametrize(
    ("if_match", "expected"),
    [("{etag}", 200), ('"other", {etag}', 200), ("*", 200), ('"other"', 412)],
    ids=["strong", "list", "star", "other"],
)
async def test_if_match(
    impl: ResponseClass,
    serve: Serve,
    site: Path,
    validators: tuple[str, str],
    if_match: str,
    expected: int,
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, _ = await get(client, If_Match=if_match.format(etag=validators[0]))
    assert status == expected


async def test_if_match_never_matches_a_weak_tag(
    impl: ResponseClass, serve: Serve, site: Path, validators: tuple[str, str]
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, _ = await get(client, If_Match=f"W/{validators[0]}")
    assert status == 412


@pytest.mark.parametrize(
    ("date", "expected"),
    [("Sun, 06 Nov 1994 08:49:37 GMT", 412), ("Sun, 06 Nov 2994 08:49:37 GMT", 200)],
    ids=["past", "future"],
)
async def test_if_unmodified_since(
    impl: ResponseClass, serve: Serve, site: Path, date: str, expected: int
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, _ = await get(client, If_Unmodified_Since=date)
    assert status == expected


async def test_failed_precondition_wins_over_not_modified(
    impl: ResponseClass, serve: Serve, site: Path, validators: tuple[str, str]
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, _ = await get(client, If_Match='"other"', If_None_Match=validators[0])
    assert status == 412


# --- Range and If-Range ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "start", "stop"),
    [
        ("bytes=0-9", 0, 10),
        ("bytes=100-", 100, 1040),
        ("bytes=-10", 1030, 1040),
        ("bytes=1000-5000", 1000, 1040),
        ("bytes=-5000", 0, 1040),
    ],
)
async def test_range_gets_206(
    impl: ResponseClass, serve: Serve, site: Path, value: str, start: int, stop: int
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, headers, body = await get(client, Range=value)
    assert status == 206
    assert body == HELLO[start:stop]
    assert headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(HELLO)}"
    assert headers["Content-Length"] == str(stop - start)


@pytest.mark.parametrize("value", ["bytes=1040-", "bytes=5000-6000", "bytes=10-5"])
async def test_unsatisfiable_range_gets_416(
    impl: ResponseClass, serve: Serve, site: Path, value: str
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, headers, _ = await get(client, Range=value)
    assert status == 416
    if value != "bytes=10-5":
        assert headers["Content-Range"] == f"bytes */{len(HELLO)}"


@upstream_differs("RFC 9110 §14.1.1: a zero suffix-length is unsatisfiable")
async def test_zero_suffix_gets_416(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, headers, _ = await get(client, Range="bytes=-0")
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(HELLO)}"


@upstream_differs("RFC 9110 §14.2: only GET has range handling; HEAD ignores Range")
async def test_range_on_head_is_ignored(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, headers, _ = await get(client, "HEAD", Range="bytes=0-9")
    assert status == 200
    assert headers["Content-Length"] == str(len(HELLO))


@upstream_differs("RFC 9110 §14.2: a unit other than bytes MUST be ignored")
async def test_unknown_range_units_get_the_whole_file(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, body = await get(client, Range="items=0-1")
    assert status == 200
    assert body == HELLO


async def read_parts(resp: aiohttp.ClientResponse) -> list[tuple[str, str, bytes]]:
    """Read a multipart/byteranges body back with aiohttp's own reader."""
    parts = []
    reader = aiohttp.MultipartReader.from_response(resp)
    while (part := await reader.next()) is not None:
        assert isinstance(part, aiohttp.BodyPartReader)
        body = await part.read()
        parts.append(
            (part.headers["Content-Type"], part.headers["Content-Range"], body)
        )
    return parts


@upstream_differs("RFC 9110 §14.6: several ranges get multipart/byteranges, not 416")
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-9,500-599", [(0, 10), (500, 600)]),
        ("bytes=-40,0-9", [(1000, 1040), (0, 10)]),  # §14.6: in the order asked for
        ("bytes=0-9,5-15,600-700,900-", [(0, 16), (600, 701), (900, 1040)]),
    ],
)
async def test_several_ranges_get_multipart_byteranges(
    impl: ResponseClass,
    serve: Serve,
    site: Path,
    value: str,
    expected: list[tuple[int, int]],
) -> None:
    client = await serve(impl, site / "hello.txt")
    async with client.get("/f", headers={"Range": value}, timeout=TIMEOUT) as resp:
        assert resp.status == 206
        assert resp.content_type == "multipart/byteranges"
        assert "Content-Range" not in resp.headers
        # The exact length: aiohttp's reader below would not notice a short body.
        assert len(await resp.read()) == int(resp.headers["Content-Length"])
    async with client.get("/f", headers={"Range": value}, timeout=TIMEOUT) as resp:
        parts = await read_parts(resp)
    assert parts == [
        ("text/plain", f"bytes {start}-{stop - 1}/{len(HELLO)}", HELLO[start:stop])
        for start, stop in expected
    ]


@pytest.mark.parametrize(
    ("size", "value"),
    [
        # More parts than are worth sending apart (gaps too wide to merge them).
        (
            10_000,
            ",".join(f"{i * 500}-{i * 500}" for i in range(17)).join(("bytes=", "")),
        ),
        # Parts whose framing would make the answer bigger than the file.
        (300, "bytes=0-0,100-100,200-200"),
    ],
    ids=["too-many", "bigger-than-the-file"],
)
async def test_abusive_ranges_get_the_whole_file(
    serve: Serve, tmp_path: Path, size: int, value: str
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(size))
    client = await serve(ConditionalFileResponse, path)
    status, headers, body = await get(client, Range=value)
    assert (status, body) == (200, path.read_bytes())
    assert headers["Content-Length"] == str(size)
    # One part fewer is within the limits.
    fewer = value.rpartition(",")[0]
    status, _, _ = await get(client, Range=fewer)
    assert status == 206


async def test_if_range_applies_to_several_ranges(
    serve: Serve, site: Path, validators: tuple[str, str]
) -> None:
    client = await serve(ConditionalFileResponse, site / "hello.txt")
    value = "bytes=0-9,500-599"
    status, _, body = await get(client, Range=value, If_Range='"other"')
    assert (status, body) == (200, HELLO)
    status, headers, _ = await get(client, Range=value, If_Range=validators[0])
    assert status == 206
    assert headers["Content-Type"].startswith("multipart/byteranges; boundary=")


async def test_several_ranges_without_sendfile_or_executor(
    serve: Serve, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aiohttp_conditional._send, "NOSENDFILE", True)
    client = await serve(
        ConditionalFileResponse, site / "hello.txt", use_executor=False, chunk_size=7
    )
    async with client.get("/f", headers={"Range": "bytes=3-30,700-"}) as resp:
        parts = await read_parts(resp)
    assert [body for _, _, body in parts] == [HELLO[3:31], HELLO[700:]]


async def test_if_range_with_the_current_tag_gets_206(
    impl: ResponseClass, serve: Serve, site: Path, validators: tuple[str, str]
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, body = await get(client, Range="bytes=0-9", If_Range=validators[0])
    assert status == 206
    assert body == HELLO[:10]


async def test_if_range_with_the_current_date_gets_206(
    impl: ResponseClass, serve: Serve, site: Path, validators: tuple[str, str]
) -> None:
    # Where no variant can be sent: a date names one representation only then.
    options = {} if impl is web.FileResponse else {"precompressed": ()}
    client = await serve(impl, site / "hello.txt", **options)
    status, _, body = await get(client, Range="bytes=0-9", If_Range=validators[1])
    assert status == 206
    assert body == HELLO[:10]


@upstream_differs("RFC 9110 §13.1.5: If-Range with an entity-tag is ignored upstream")
@pytest.mark.parametrize("if_range", ['"other"', "W/{etag}"], ids=["other", "weak"])
async def test_if_range_with_another_or_weak_tag_gets_200(
    impl: ResponseClass,
    serve: Serve,
    site: Path,
    validators: tuple[str, str],
    if_range: str,
) -> None:
    client = await serve(impl, site / "hello.txt")
    value = if_range.format(etag=validators[0])
    status, _, body = await get(client, Range="bytes=0-9", If_Range=value)
    assert status == 200
    assert body == HELLO


@upstream_differs("RFC 9110 §13.1.5: an If-Range date must match exactly, not <=")
async def test_if_range_with_a_later_date_gets_200(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "hello.txt")
    later = "Sun, 06 Nov 2994 08:49:37 GMT"
    status, _, body = await get(client, Range="bytes=0-9", If_Range=later)
    assert status == 200
    assert body == HELLO


async def test_if_range_with_an_older_date_gets_200(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "hello.txt")
    status, _, _ = await get(
        client, Range="bytes=0-9", If_Range="Sun, 06 Nov 1994 08:49:37 GMT"
    )
    assert status == 200


async def test_if_range_with_a_date_shared_by_a_variant_gets_200(
    serve: Serve, tmp_path: Path
) -> None:
    # A file and its .gz written in the same second share Last-Modified: the date does
    # not tell which one a resumed download holds (RFC 9110 §8.8.2.2, §13.1.5).
    path = tmp_path / "app.js"
    path.write_bytes(HELLO)
    (tmp_path / "app.js.gz").write_bytes(gzip.compress(HELLO))
    age(path, tmp_path / "app.js.gz")
    client = await serve(ConditionalFileResponse, path, etag=False)
    _, identity, _ = await get(client, Accept_Encoding="identity")
    _, gzipped, _ = await get(client, Accept_Encoding="gzip")
    assert identity["Last-Modified"] == gzipped["Last-Modified"]
    fields = {"Range": "bytes=10-", "If-Range": identity["Last-Modified"]}
    async with client.get(
        "/f",
        headers={**fields, "Accept-Encoding": "gzip"},
        auto_decompress=False,
        timeout=TIMEOUT,
    ) as resp:
        assert resp.status == 200
        assert gzip.decompress(await resp.read()) == HELLO
    # Nor once the variant is gone: the client may hold its bytes.
    (tmp_path / "app.js.gz").unlink()
    status, _, body = await get(client, Accept_Encoding="gzip", **fields)
    assert (status, body) == (200, HELLO)
    # Where no variant is ever sent, the date identifies the one representation.
    client = await serve(ConditionalFileResponse, path, etag=False, precompressed=())
    assert (await get(client, Accept_Encoding="gzip", **fields))[0] == 206


async def test_a_variant_older_than_a_file_rolled_back_with_cp_p_is_not_sent(
    serve: Serve, tmp_path: Path
) -> None:
    # Release 2 deployed with its .gz; then release 1's app.js put back with cp -p: an
    # older mtime than the .gz, but a newer ctime.
    path = tmp_path / "app.js"
    write(path, b"release 1", S * NS)
    release_1 = path.stat()
    write(path, b"release 2", (S + 3600) * NS)
    (tmp_path / "app.js.gz").write_bytes(gzip.compress(b"release 2"))
    os.utime(tmp_path / "app.js.gz", ns=((S + 3600) * NS,) * 2)
    age(path, tmp_path / "app.js.gz")
    write(path, b"release 1", release_1.st_mtime_ns)
    age(path)
    client = await serve(ConditionalFileResponse, path)
    status, headers, body = await get(client, Accept_Encoding="gzip")
    assert (status, body) == (200, b"release 1")
    assert "Content-Encoding" not in headers
    assert headers["Vary"] == "Accept-Encoding"


async def test_a_stale_variant_stays_unsent_after_a_chmod(
    serve: Serve, tmp_path: Path
) -> None:
    # A chmod, a chown or a copy moves the ctime of a stale app.js.gz, not its mtime.
    path = tmp_path / "app.js"
    write(path, b"release 1", S * NS)
    (tmp_path / "app.js.gz").write_bytes(gzip.compress(b"release 1"))
    os.utime(tmp_path / "app.js.gz", ns=(S * NS,) * 2)
    write(path, b"release 2", (S + 3600) * NS)
    os.chmod(tmp_path / "app.js.gz", 0o644)
    age(path, tmp_path / "app.js.gz")
    client = await serve(ConditionalFileResponse, path)
    status, headers, body = await get(client, Accept_Encoding="gzip")
    assert (status, body) == (200, b"release 2")
    assert "Content-Encoding" not in headers


async def test_a_404_that_a_variant_would_answer_carries_vary(
    serve: Serve, tmp_path: Path
) -> None:
    (tmp_path / "site.css.br").write_bytes(b"brotli")
    client = await serve(ConditionalFileResponse, tmp_path / "site.css")
    status, headers, _ = await get(client, Accept_Encoding="identity")
    assert (status, headers["Vary"]) == (404, "Accept-Encoding")
    async with client.get(
        "/f", headers={"Accept-Encoding": "br"}, auto_decompress=False
    ) as resp:
        assert (resp.status, await resp.read()) == (200, b"brotli")


@pytest.mark.parametrize(
    "value",
    ["no-cache\r\nSet-Cookie: x=1", "max-age=60\n", "private\x00", "\x7f"],
    ids=["crlf", "lf", "nul", "del"],
)
def test_a_cache_control_that_cannot_be_sent_fails_at_construction(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ValueError, match="cache_control"):
        ConditionalFileResponse(tmp_path / "f", cache_control=value)


def hostile_lines(name: str, number: int, first: str = "", body: str = "") -> list[Any]:
    """Return the lines of one field that aiohttp joins to about a megabyte."""
    room = 8190 - len(name)  # aiohttp's limit on a header line
    # 120 lines, and a few the client adds, of aiohttp's 128.
    starts = [first, *[""] * 119]
    return [
        (name, (f"{start}{number:06d}" + body * (room // len(body)))[:room])
        for start in starts
    ]


async def test_megabyte_header_values_pin_no_memory(
    serve: Serve, site: Path, validators: tuple[str, str]
) -> None:
    # aiohttp takes 128 header lines, each of 8 KiB, and we join a field's (§5.3): a
    # megabyte a value, different on every request, must leave no trace.
    caches = (_preconditions._fixed_date, _encoding.parse_accept_encoding)
    before = [cache.cache_info().currsize for cache in caches]
    client = await serve(ConditionalFileResponse, site / "style.css")
    cases = [
        ("Accept-Encoding", "gzip, ", "x;q=0.5, ", 200),
        ("If-Modified-Since", validators[1], " junk", 200),
        ("If-None-Match", "", '"x", ', 200),
        ("If-Match", "", ",", 412),
        ("Range", "bytes=", "0-0,", 200),
    ]
    for number in range(10):
        for name, first, body, status in cases:
            fields = hostile_lines(name, number, first, body)
            assert sum(len(value) for _, value in fields) > 950_000
            async with client.get(
                "/f", headers=fields, timeout=TIMEOUT, auto_decompress=False
            ) as resp:
                assert resp.status == status
                await resp.read()
    assert [cache.cache_info().currsize for cache in caches] == before


# --- precompressed variants and the headers of a 304 ----------------------------------


@pytest.mark.parametrize(
    ("accept", "encoding", "suffix"),
    [("gzip", "gzip", ".gz"), ("gzip, deflate, br", "br", ".br")],
)
async def test_precompressed_variant_is_sent(
    impl: ResponseClass,
    serve: Serve,
    site: Path,
    accept: str,
    encoding: str,
    suffix: str,
) -> None:
    client = await serve(impl, site / "style.css")
    async with client.get(
        "/f", headers={"Accept-Encoding": accept}, auto_decompress=False
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == encoding
        assert resp.headers["Content-Type"] == "text/css"
        assert resp.headers["Vary"] == "Accept-Encoding"
        assert await resp.read() == (site / f"style.css{suffix}").read_bytes()


async def test_symlinked_variant_is_ignored(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "linked.txt")
    status, headers, body = await get(client, Accept_Encoding="gzip")
    assert status == 200
    assert "Content-Encoding" not in headers
    assert body == b"plain"


@upstream_differs("RFC 9110 §15.4.5: a 304 carries the Vary a 200 would carry")
async def test_304_of_a_variant_carries_vary(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "style.css")
    _, headers, _ = await get(client, Accept_Encoding="gzip")
    status, headers, _ = await get(
        client, Accept_Encoding="gzip", If_None_Match=headers["ETag"]
    )
    assert status == 304
    assert headers["Vary"] == "Accept-Encoding"


@upstream_differs("RFC 9110 §12.5.5: the choice of variant depended on Accept-Encoding")
async def test_identity_answer_for_a_file_with_variants_carries_vary(
    impl: ResponseClass, serve: Serve, site: Path
) -> None:
    client = await serve(impl, site / "style.css", headers={"Vary": "Origin"})
    status, headers, _ = await get(client, Accept_Encoding="identity")
    assert status == 200
    assert headers["Vary"] == "Origin, Accept-Encoding"


@upstream_differs("RFC 9110 §15.4.5: a 304 has no body fields")
async def test_304_keeps_callers_headers_but_no_body_fields(
    impl: ResponseClass, serve: Serve, site: Path, validators: tuple[str, str]
) -> None:
    headers = {
        "Cache-Control": "max-age=60",
        "X-Mine": "1",
        "Content-Type": "text/x-mine",
        "Content-Language": "en",
    }
    client = await serve(impl, site / "hello.txt", headers=headers)
    status, got, _ = await get(client, If_None_Match=validators[0])
    assert status == 304
    assert got["Cache-Control"] == "max-age=60"
    assert got["X-Mine"] == "1"
    assert got["ETag"] == validators[0]
    assert got["Last-Modified"] == validators[1]
    for name in ("Content-Type", "Content-Language", "Content-Length"):
        assert name not in got


# --- per-response switches ------------------------------------------------------------


async def test_etag_false_neither_sends_nor_honours_etags(
    serve: Serve, site: Path, validators: tuple[str, str]
) -> None:
    client = await serve(ConditionalFileResponse, site / "hello.txt", etag=False)
    status, headers, _ = await get(client)
    assert "ETag" not in headers
    assert headers["Last-Modified"] == validators[1]
    status, _, _ = await get(client, If_None_Match=validators[0])
    assert status == 200
    status, _, _ = await get(client, Range="bytes=0-1", If_Range=validators[0])
    assert status == 200
    status, _, _ = await get(client, If_Modified_Since=validators[1])
    assert status == 304


async def test_last_modified_false_neither_sends_nor_honours_dates(
    serve: Serve, site: Path, validators: tuple[str, str]
) -> None:
    client = await serve(
        ConditionalFileResponse, site / "hello.txt", last_modified=False
    )
    status, headers, _ = await get(client)
    assert "Last-Modified" not in headers
    assert headers["ETag"] == validators[0]
    status, _, _ = await get(client, If_Modified_Since=validators[1])
    assert status == 200
    status, _, _ = await get(client, Range="bytes=0-1", If_Range=validators[1])
    assert status == 200
    status, _, _ = await get(client, If_None_Match=validators[0])
    assert status == 304


async def test_both_switched_off_never_gives_304(serve: Serve, site: Path) -> None:
    client = await serve(
        ConditionalFileResponse, site / "hello.txt", etag=False, last_modified=False
    )
    status, headers, _ = await get(client)
    assert "ETag" not in headers
    assert "Last-Modified" not in headers
    status, _, _ = await get(
        client, If_Modified_Since="Sun, 06 Nov 2994 08:49:37 GMT", If_None_Match='"x"'
    )
    assert status == 200


async def test_cache_control_goes_on_200_206_and_304_only(
    serve: Serve, site: Path, validators: tuple[str, str]
) -> None:
    value = "public, max-age=600"
    client = await serve(
        ConditionalFileResponse, site / "hello.txt", cache_control=value
    )
    for kwargs, expected in [
        ({}, 200),
        ({"Range": "bytes=0-1"}, 206),
        ({"If_None_Match": validators[0]}, 304),
    ]:
        status, headers, _ = await get(client, **kwargs)
        assert (status, headers["Cache-Control"]) == (expected, value)
    status, headers, _ = await get(client, If_Match='"x"')
    assert status == 412
    assert "Cache-Control" not in headers
    missing = await serve(ConditionalFileResponse, site / "nope", cache_control=value)
    status, headers, _ = await get(missing)
    assert status == 404
    assert "Cache-Control" not in headers


# --- one executor job, and a file opened only to be sent ------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "state"),
    [
        ({"If-None-Match": "*"}, 304, FileResponseState.NOT_MODIFIED),
        ({"If-Match": '"x"'}, 412, FileResponseState.PRECONDITION_FAILED),
        ({"Range": "bytes=99999-"}, 416, FileResponseState.RANGE_NOT_SATISFIABLE),
    ],
)
async def test_answers_without_body_run_one_job_and_open_nothing(
    aiohttp_client: Any,
    executor: CountingExecutor,
    opened: list[str],
    tmp_path: Path,
    headers: dict[str, str],
    status: int,
    state: FileResponseState,
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"content")
    responses: list[ConditionalFileResponse] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        responses.append(ConditionalFileResponse(path, use_executor=True))
        return responses[-1]

    app = web.Application()
    app.router.add_get("/f", handler)
    client = await aiohttp_client(app)
    opened.clear()
    async with client.get("/f", headers=headers) as resp:
        assert resp.status == status
    assert executor.jobs == ["executor_job"]
    assert opened == []
    assert responses[0].state is state


@pytest.mark.parametrize("name", ["missing", "sub"])
async def test_403_and_404_run_one_job_and_open_nothing(
    serve: Serve,
    executor: CountingExecutor,
    opened: list[str],
    tmp_path: Path,
    name: str,
) -> None:
    (tmp_path / "sub").mkdir()
    client = await serve(ConditionalFileResponse, tmp_path / name, use_executor=True)
    status, _, _ = await get(client)
    assert status in (403, 404)
    assert executor.jobs == ["executor_job"]
    assert opened == []


async def test_a_small_body_is_read_and_closed_in_its_one_job(
    serve: Serve, executor: CountingExecutor, opened: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"content")
    client = await serve(ConditionalFileResponse, path, use_executor=True)
    opened.clear()
    for _ in range(2):
        status, _, body = await get(client, Range="bytes=1-3")
        assert (status, body) == (206, b"ont")
    assert opened == [str(path)] * 2
    assert executor.jobs == ["executor_job"] * 2
    assert open_descriptors(path) == 0


async def test_200_opens_the_file_once_in_its_one_job(
    serve: Serve, executor: CountingExecutor, opened: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "f.bin"
    content = os.urandom(200_000)  # past what the job reads itself: sent from the file
    path.write_bytes(content)
    client = await serve(ConditionalFileResponse, path, use_executor=True)
    opened.clear()
    status, _, body = await get(client, Range="bytes=1-100000")
    assert (status, body) == (206, content[1:100001])
    assert opened == [str(path)]
    assert executor.jobs == ["executor_job"]
    assert open_descriptors(path) == 1  # waiting for a job to close it
    # With no other request coming, one job of its own closes it soon after.
    for _ in range(100):
        await asyncio.sleep(0.05)
        if open_descriptors(path) == 0:
            break
    assert executor.jobs == ["executor_job", "close_files"]
    assert open_descriptors(path) == 0


async def test_the_next_job_closes_the_files_sent_before(
    serve: Serve,
    executor: CountingExecutor,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiohttp_conditional._jobs, "_CLOSE_WITHIN", 3600)
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(200_000))
    client = await serve(ConditionalFileResponse, path, use_executor=True)
    for expected_open in (1, 1, 1):
        status, _, _ = await get(client)
        assert status == 200
        assert open_descriptors(path) == expected_open
    status, _, _ = await get(client, If_None_Match="*")
    assert status == 304
    assert open_descriptors(path) == 0
    assert executor.jobs == ["executor_job"] * 4


async def test_still_one_open_when_web_file_response_is_ours(
    serve: Serve,
    opened: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # aiohttp's own test suite, run against us, swaps web.FileResponse for our class:
    # then nothing of upstream's prepare may run as well.
    monkeypatch.setattr(web, "FileResponse", ConditionalFileResponse)
    path = tmp_path / "f.txt"
    path.write_bytes(b"content")
    client = await serve(ConditionalFileResponse, path)
    opened.clear()
    for _ in range(2):
        status, _, body = await get(client)
        assert (status, body) == (200, b"content")
    assert opened == [str(path)] * 2


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"If-None-Match": "*"}, 304), ({"Range": "bytes=1-3"}, 206)],
)
async def test_use_executor_false_runs_everything_on_the_loop(
    serve: Serve,
    executor: CountingExecutor,
    opened: list[str],
    tmp_path: Path,
    headers: dict[str, str],
    status: int,
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"content")
    client = await serve(ConditionalFileResponse, path, use_executor=False)
    opened.clear()
    async with client.get("/f", headers=headers) as resp:
        assert resp.status == status
        assert await resp.read() == (b"ont" if status == 206 else b"")
    assert executor.jobs == []
    assert opened == ([str(path)] if status == 206 else [])


def test_path_attribute_is_upstreams(tmp_path: Path) -> None:
    response = ConditionalFileResponse(str(tmp_path / "f.txt"))
    assert response._path == tmp_path / "f.txt"
    response._path = tmp_path / "g.txt"
    assert response._path == tmp_path / "g.txt"


async def serve_decided(
    aiohttp_client: Any, path: Path, change: Callable[[], None]
) -> Client:
    """Serve path at /f, each answer decided (the file opened) before change() runs."""

    async def handler(request: web.Request) -> web.StreamResponse:
        asked = Asked(request.method, conditions_of(request.headers), None, moment())
        outcome = look_up(DISK, str(path), Options(), asked)
        change()
        return decided_response(
            str(path), outcome, chunk_size=256 * 1024, cache_control=None,
            use_executor=True,
        )  # fmt: skip

    app = web.Application()
    app.router.add_get("/f", handler)
    client: Client = await aiohttp_client(app)
    return client


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "read"])
@pytest.mark.parametrize("ranges", [None, "bytes=0-9,5000-"], ids=["whole", "parts"])
async def test_a_file_that_shrinks_while_sent_cuts_the_connection(
    aiohttp_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    sendfile: bool,
    ranges: str | None,
) -> None:
    monkeypatch.setattr(aiohttp_conditional._send, "NOSENDFILE", not sendfile)
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(100_000))

    # Decided and opened as 100,000 bytes; then the file shrinks before sending.
    client = await serve_decided(aiohttp_client, path, lambda: os.truncate(path, 1000))
    headers = {"Range": ranges} if ranges else {}
    async with client.get("/f", headers=headers, timeout=TIMEOUT) as resp:
        assert resp.status == (206 if ranges else 200)
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert "Error handling request" not in caplog.text


async def test_a_path_that_is_not_utf8(serve: Serve, tmp_path: Path) -> None:
    path = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.txt")
    Path(path).write_bytes(b"latin-1 name")
    client = await serve(ConditionalFileResponse, path)
    status, headers, body = await get(client)
    assert (status, body) == (200, b"latin-1 name")
    assert headers["Content-Type"] == "text/plain"


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "read"])
async def test_clients_that_leave_mid_download_leave_no_file_open(
    serve: Serve,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    sendfile: bool,
) -> None:
    monkeypatch.setattr(aiohttp_conditional._send, "NOSENDFILE", not sendfile)
    path = tmp_path / "big.bin"
    with path.open("wb") as file:
        file.truncate(8 * 1024 * 1024)
    client = await serve(ConditionalFileResponse, path)
    assert client.port is not None
    for _ in range(50):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        await reader.read(1000)
        writer.transport.abort()  # gone, with megabytes still to come
        await asyncio.sleep(0)
    for _ in range(100):
        await asyncio.sleep(0.05)
        if open_descriptors(path) == 0:
            break
    assert open_descriptors(path) == 0
    assert "Error handling request" not in caplog.text


async def test_a_file_over_4_gib_with_ranges_near_its_end(
    impl: ResponseClass, serve: Serve, tmp_path: Path
) -> None:
    size = 5 * 1024**3 + 7
    path = tmp_path / "sparse.bin"
    with path.open("wb") as file:
        file.seek(size - 8)
        file.write(b"THE-END!")
    client = await serve(impl, path)
    status, headers, _ = await get(client, "HEAD")
    assert (status, headers["Content-Length"]) == (200, str(size))
    status, headers, body = await get(client, Range="bytes=-8")
    assert (status, body) == (206, b"THE-END!")
    assert headers["Content-Range"] == f"bytes {size - 8}-{size - 1}/{size}"
    status, _, body = await get(client, Range=f"bytes={size - 4}-{size + 100}")
    assert (status, body) == (206, b"END!")


async def test_a_file_replaced_while_sent_is_sent_as_it_was_decided(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    path = tmp_path / "app.js"
    old = os.urandom(50_000)
    path.write_bytes(old)
    age(path)
    st = path.stat()

    def deploy() -> None:
        # A deploy swaps the file in between the decision and the first byte sent.
        (tmp_path / "new.js").write_bytes(b"new version")
        os.replace(tmp_path / "new.js", path)

    client = await serve_decided(aiohttp_client, path, deploy)
    async with client.get("/f", timeout=TIMEOUT) as resp:
        body = await resp.read()
        assert body == old
        assert resp.headers["Content-Length"] == str(len(old))
        changed = max(st.st_mtime_ns, st.st_ctime_ns)
        assert resp.headers["ETag"] == f'"{changed:x}-{len(old):x}"'


@pytest.mark.parametrize("swap", ["deleted", "fifo", "directory", "symlink"])
async def test_a_file_swapped_between_stat_and_open(tmp_path: Path, swap: str) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"content")
    age(path)
    stat_before = path.stat()  # what the static route's walk saw
    path.unlink()
    if swap == "fifo":
        os.mkfifo(path)  # opening it for reading would block a worker for ever
    elif swap == "directory":
        path.mkdir()
    elif swap == "symlink":
        (tmp_path / "elsewhere.txt").write_bytes(b"content")
        path.symlink_to(tmp_path / "elsewhere.txt")
    asked = Asked("GET", conditions_of(CIMultiDictProxy(CIMultiDict())), None, moment())
    outcome = await asyncio.wait_for(
        asyncio.to_thread(look_up, DISK, str(path), Options(), asked, stat_before), 10
    )
    assert outcome.file is None
    assert outcome.decision.state in (
        FileResponseState.NOT_FOUND,
        FileResponseState.FORBIDDEN,
    )


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "read"])
@pytest.mark.parametrize(
    "ranges", [None, "bytes=0-9,5000-", "bytes=7-7"], ids=["whole", "parts", "one-byte"]
)
@pytest.mark.parametrize("keep_mtime", [False, True], ids=["write", "cp-p"])
async def test_a_file_rewritten_in_place_while_sent_cuts_the_connection(
    aiohttp_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sendfile: bool,
    ranges: str | None,
    keep_mtime: bool,
) -> None:
    monkeypatch.setattr(aiohttp_conditional._send, "NOSENDFILE", not sendfile)
    # Every body streamed from the open file, as a small one is when the job saw the
    # file change under its read.
    monkeypatch.setattr(aiohttp_conditional._lookup, "READ_AHEAD", 0)
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(100_000))
    age(path)

    def rewrite_in_place() -> None:
        # The same size, other bytes: the headers now describe what is not there.
        mtime = path.stat().st_mtime_ns
        with path.open("r+b") as file:
            file.write(os.urandom(100_000))
        if keep_mtime:
            os.utime(path, ns=(mtime, mtime))

    client = await serve_decided(aiohttp_client, path, rewrite_in_place)
    headers = {"Range": ranges} if ranges else {}
    async with client.get("/f", headers=headers, timeout=TIMEOUT) as resp:
        assert "ETag" in resp.headers
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


# --- never a wrong 304 ----------------------------------------------------------------

HELD = {"If-None-Match": "ETag", "If-Modified-Since": "Last-Modified"}


def write(path: Path, content: bytes, mtime_ns: int | None = None) -> None:
    path.write_bytes(content)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


async def revalidate(
    client: Client, field: str, held: CIMultiDict[str]
) -> tuple[int, bytes]:
    headers = {field: held[HELD[field]]} if HELD[field] in held else {}
    status, _, body = await get(
        client, **{k.replace("-", "_"): v for k, v in headers.items()}
    )
    return status, body


@upstream_differs("Last-Modified rounded up and compared with <=: a wrong 304")
async def test_rewrite_in_the_same_second_gets_200_for_if_modified_since(
    impl: ResponseClass, serve: Serve, tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    write(path, b"version A", S * NS + 200_000_000)
    age(path)
    client = await serve(impl, path)
    _, held, _ = await get(client)
    write(path, b"version B", S * NS + 700_000_000)
    assert await revalidate(client, "If-Modified-Since", held) == (200, b"version B")


@upstream_differs("the same timestamp and size give the same validators: a wrong 304")
@pytest.mark.parametrize("field", ["If-None-Match", "If-Modified-Since"])
async def test_same_size_copy_keeping_the_mtime_gets_200(
    impl: ResponseClass, serve: Serve, tmp_path: Path, field: str
) -> None:
    # What cp -p, rsync -t and tar x do; also two writes on a file system that records
    # whole seconds.
    path = tmp_path / "f.txt"
    write(path, b"version A", S * NS)
    age(path)
    client = await serve(impl, path)
    _, held, _ = await get(client)
    write(path, b"version B", S * NS)
    assert await revalidate(client, field, held) == (200, b"version B")


@upstream_differs("an older mtime is <= the held Last-Modified: a wrong 304")
async def test_rollback_to_an_older_version_gets_200(
    impl: ResponseClass, serve: Serve, tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    write(path, b"version B, the newer one", (S + 3600) * NS)
    age(path)
    client = await serve(impl, path)
    _, held, _ = await get(client)
    write(path, b"version A", S * NS)
    assert await revalidate(client, "If-Modified-Since", held) == (200, b"version A")


@pytest.mark.parametrize("field", ["If-None-Match", "If-Modified-Since"])
async def test_two_real_writes_within_one_second_never_get_304(
    serve: Serve, tmp_path: Path, field: str
) -> None:
    path = tmp_path / "f.txt"
    client = await serve(ConditionalFileResponse, path)
    time.sleep(1 - time.time() % 1 + 0.01)
    write(path, b"version A")
    _, held, _ = await get(client)
    write(path, b"version B")
    # Sent within the second it changed in: no validator to hold yet.
    assert "ETag" not in held
    assert "Last-Modified" not in held
    assert await revalidate(client, field, held) == (200, b"version B")
    age(path)
    _, held, _ = await get(client)
    assert await revalidate(client, field, held) == (304, b"")
    write(path, b"version C")
    assert await revalidate(client, field, held) == (200, b"version C")


# --- any header, through a real server ------------------------------------------------


@pytest.fixture(scope="module")
def threaded_server(site: Path) -> Iterator[str]:
    """Serve site/ with ours from a thread, for synchronous hypothesis tests."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return ConditionalFileResponse(site / request.match_info["name"])

    app = web.Application()
    app.router.add_route("*", "/{name}", handler)
    with serve_in_thread(app) as port:
        yield f"127.0.0.1:{port}"


field_values = st.one_of(
    st.text(
        st.characters(
            min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"
        ),
        max_size=40,
    ),
    st.sampled_from(
        [
            "*",
            '"x"',
            'W/"x"',
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 2994 08:49:37 GMT",
            "bytes=0-9",
            "bytes=-0",
            "bytes=5-",
            "bytes=0-1,3-4",
            "bytes=0-0,500-500",
            "bytes=-1,0-0,200-300",
        ]
    ),
)
conditional_fields = st.dictionaries(
    st.sampled_from(
        [
            "If-Match",
            "If-None-Match",
            "If-Modified-Since",
            "If-Unmodified-Since",
            "If-Range",
            "Range",
            "Accept-Encoding",
        ]
    ),
    field_values.map(str.strip),
)
ALLOWED = {
    "GET": {200, 206, 304, 412, 416},
    "HEAD": {200, 304, 412},
    "POST": {200, 412},
}


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(sorted(ALLOWED)),
    name=st.sampled_from(["hello.txt", "style.css", "empty.txt", "data"]),
    fields=conditional_fields,
)
def test_any_conditional_fields_get_an_allowed_answer(
    threaded_server: str, site: Path, method: str, name: str, fields: dict[str, str]
) -> None:
    connection = http.client.HTTPConnection(threaded_server, timeout=10)
    try:
        connection.request(method, f"/{name}", headers=fields)
        resp = connection.getresponse()
        body = resp.read()
    finally:
        connection.close()
    assert resp.status in ALLOWED[method]
    content = (site / name).read_bytes()
    if resp.status == 206 and resp.headers["Content-Encoding"]:
        assert len(body) == int(resp.headers["Content-Length"])
    elif resp.status == 206 and "Content-Range" not in resp.headers:
        assert resp.headers["Content-Type"].startswith("multipart/byteranges")
        assert len(body) == int(resp.headers["Content-Length"])
        for piece in re.findall(
            rb"Content-Range: bytes (\d+)-(\d+)/(\d+)\r\n\r\n", body
        ):
            assert int(piece[2]) == len(content)
            assert int(piece[0]) <= int(piece[1]) < len(content)
    elif resp.status == 206:
        first, _, rest = (
            resp.headers["Content-Range"].removeprefix("bytes ").partition("-")
        )
        last, _, size = rest.partition("/")
        assert int(size) == len(content)
        assert body == content[int(first) : int(last) + 1]
    elif (
        resp.status == 200 and method == "GET" and not resp.headers["Content-Encoding"]
    ):
        assert body == content
    elif resp.status in (304, 412, 416) or method == "HEAD":
        assert body == b""


def test_the_closer_of_sent_files_does_not_keep_its_loop_alive() -> None:
    loop = asyncio.new_event_loop()
    aiohttp_conditional._jobs.closer(loop)
    alive = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert alive() is None


# --- the closer of sent files ----------------------------------------------------------


async def test_a_cancelled_job_hands_the_files_it_was_to_close_back(
    tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    gate = threading.Event()
    pool = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(pool)
    busy = loop.run_in_executor(None, gate.wait)  # the only worker, held
    sent = open(tmp_path / "sent.bin", "wb", buffering=0)  # noqa: SIM115
    closer(loop).add(loop, sent)
    # A request takes the waiting file for its job, then is cancelled while the job
    # is still queued: the job never runs.
    request = asyncio.ensure_future(run_job(loop, close_files))
    await asyncio.sleep(0)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    gate.set()
    await busy
    for _ in range(100):
        if sent.closed:
            break
        await asyncio.sleep(0.05)
    assert sent.closed
    pool.shutdown()


def test_files_waiting_when_the_executor_shuts_down_are_closed(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    try:
        sent = open(tmp_path / "sent.bin", "wb", buffering=0)  # noqa: SIM115
        closer(loop).add(loop, sent)
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.run_until_complete(asyncio.sleep(0.2))  # past the closer's 50 ms
        assert sent.closed
        assert errors == []
    finally:
        loop.close()


async def test_many_files_waiting_are_closed_at_once(
    executor: CountingExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With every request answered on the loop no job comes along to close sent
    # files: past 64 of them one job closes them without waiting for the timer, so
    # a busy server holds no more descriptors than that.
    monkeypatch.setattr(aiohttp_conditional._jobs, "_CLOSE_WITHIN", 3600)
    loop = asyncio.get_running_loop()
    files = [
        open(tmp_path / f"sent{index}.bin", "wb", buffering=0)  # noqa: SIM115
        for index in range(64)
    ]
    closer(loop).add(loop, *files[:63])
    await asyncio.sleep(0.05)
    assert executor.jobs == []
    closer(loop).add(loop, files[63])
    for _ in range(100):
        if all(file.closed for file in files):
            break
        await asyncio.sleep(0.01)
    assert executor.jobs == ["close_files"]
    assert all(file.closed for file in files)
