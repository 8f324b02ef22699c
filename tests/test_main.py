"""python -m aiohttp_conditional DIR, started as a real process."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aiohttp_conditional", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """Serve a small tree; return its base URL."""
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "hello.txt").write_text("hello\n")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    port = free_port()
    process = start(str(root), "--port", str(port))
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == f"Serving {root} at http://127.0.0.1:{port}/"
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.communicate(timeout=10)


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_serves_files_and_index_pages(served: str) -> None:
    assert fetch(f"{served}/hello.txt") == (200, b"hello\n")
    assert fetch(f"{served}/docs/") == (200, b"<h1>docs</h1>\n")
    assert fetch(f"{served}/missing") == (404, b"")


def test_revalidation_gets_304(served: str) -> None:
    time.sleep(1.05)  # the files were just written: wait until they carry validators
    with urllib.request.urlopen(f"{served}/hello.txt", timeout=10) as resp:
        etag = resp.headers["ETag"]
        # Browsers revalidate every time unless told otherwise: never a stale page.
        assert resp.headers["Cache-Control"] == "no-cache"
    assert etag
    assert fetch(f"{served}/hello.txt", {"If-None-Match": etag})[0] == 304


@pytest.mark.parametrize(
    "path",
    ["/../secret.txt", "/%2e%2e/secret.txt", "/docs/../../secret.txt", "/escape.txt"],
)
def test_nothing_outside_the_root(served: str, path: str) -> None:
    host = served.removeprefix("http://")
    with socket.create_connection(tuple(host.split(":"))) as sock:  # type: ignore[arg-type]
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 404")
    assert b"outside" not in response


def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process = start(str(tmp_path), "--port", str(port))
    assert process.stdout is not None
    assert process.stdout.readline().startswith("Serving ")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "Traceback" not in err


def test_options(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a\n")
    time.sleep(1.05)  # old enough for validators, were they on
    port = free_port()
    process = start(
        str(tmp_path), "--port", str(port), "--listing", "--no-validators",
        "--cache-control", "no-cache",
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.readline()
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/sub/", timeout=10
        ) as resp:
            assert b'<a href="/sub/a.txt">a.txt</a>' in resp.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sub/a.txt") as resp:
            assert resp.headers["Cache-Control"] == "no-cache"
            assert resp.headers["ETag"] is None
            assert resp.headers["Last-Modified"] is None
        # As --help says: no 304 but the one RFC 9110 §13.1.2 requires for "*".
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/sub/a.txt", headers={"If-None-Match": "*"}
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        with answer.value:
            assert answer.value.code == 304
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_missing_directory_is_a_one_line_error(tmp_path: Path) -> None:
    process = start(str(tmp_path / "nope"))
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err == f"error: {tmp_path / 'nope'} is not a directory\n"


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = start(str(tmp_path), "--port", str(port))
        _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}:")
    assert err.count("\n") == 1


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_that_is_none_is_a_usage_error(tmp_path: Path, port: str) -> None:
    process = start(str(tmp_path), "--port", port)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("python -m aiohttp_conditional: error:")


def test_no_validators_help_says_what_happens() -> None:
    process = start("--help")
    out, _ = process.communicate(timeout=30)
    help_text = " ".join(re.sub(r"-\n\s+", "-", out).split())
    assert "so that only If-None-Match: * gets a 304" in help_text
    assert "never answer 304" not in help_text


@pytest.mark.parametrize(
    "value",
    ["no-cache\r\nSet-Cookie: x=1", "max-age=60\n", "private\x01"],
    ids=["crlf", "lf", "control"],
)
def test_a_cache_control_that_cannot_be_sent_is_a_usage_error(
    tmp_path: Path, value: str
) -> None:
    # Not a server that starts and then answers every request with an empty reply.
    process = start(str(tmp_path), "--port", str(free_port()), "--cache-control", value)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(
        "python -m aiohttp_conditional: error: cache_control is not a header value"
    )


@pytest.mark.parametrize(
    ("options", "status"), [((), 404), (("--dotfiles", "allow"), 200)]
)
def test_dotfiles_are_denied_unless_allowed(
    tmp_path: Path, options: tuple[str, ...], status: int
) -> None:
    # A project directory served as it is must not give its secrets away.
    (tmp_path / ".env").write_text("TOKEN=secret\n")
    port = free_port()
    process = start(str(tmp_path), "--port", str(port), *options)
    assert process.stdout is not None
    process.stdout.readline()
    try:
        got, body = fetch(f"http://127.0.0.1:{port}/.env")
        assert got == status
        assert (b"TOKEN" in body) == (status == 200)
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_spa_and_not_found(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<div id=app></div>\n")
    (tmp_path / "404.html").write_text("<h1>Not here</h1>\n")
    port = free_port()
    process = start(
        str(tmp_path), "--port", str(port), "--spa", "--not-found", "404.html"
    )
    assert process.stdout is not None
    process.stdout.readline()
    try:
        page = {"Accept": "text/html,*/*;q=0.8"}
        assert fetch(f"http://127.0.0.1:{port}/users/42", page) == (
            200,
            b"<div id=app></div>\n",
        )
        request = urllib.request.Request(f"http://127.0.0.1:{port}/app.js")
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        with answer.value:
            assert answer.value.code == 404
            assert answer.value.read() == b"<h1>Not here</h1>\n"
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.mark.parametrize(
    "options", [("--spa",), ("--not-found", "404.html")], ids=["spa", "not-found"]
)
def test_a_missing_page_is_a_usage_error(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiohttp_conditional", str(tmp_path), *options],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert options[0] in result.stderr


def test_header_fields_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    port = free_port()
    process = start(
        str(tmp_path), "--port", str(port),
        "-H", "X-Content-Type-Options: nosniff",
        "--header", "Link: </a.txt>; rel=preload",
        "-H", "Link:</b.txt>; rel=preload",
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.readline()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/a.txt") as resp:
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            # Repeated, as curl's -H repeats: two fields.
            assert resp.headers.get_all("Link") == [
                "</a.txt>; rel=preload",
                "</b.txt>; rel=preload",
            ]
            assert "Access-Control-Allow-Origin" not in resp.headers
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.mark.parametrize(
    "value", ["no colon", "Bad Name: x", 'ETag: "x"', "X-A: b\x01"]
)
def test_a_header_that_cannot_be_sent_is_a_usage_error(
    tmp_path: Path, value: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiohttp_conditional", str(tmp_path), "-H", value],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "argument -H/--header:" in result.stderr.splitlines()[-1]


def test_cors_answers_every_request_and_preflights(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    port = free_port()
    process = start(str(tmp_path), "--port", str(port), "--cors")
    assert process.stdout is not None
    process.stdout.readline()
    try:
        for path in ("/a.txt", "/missing"):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
            try:
                resp = urllib.request.urlopen(request, timeout=10)
            except urllib.error.HTTPError as error:
                resp = error
            with resp:
                assert resp.headers["Access-Control-Allow-Origin"] == "*"
        preflight = urllib.request.Request(
            f"http://127.0.0.1:{port}/a.txt",
            method="OPTIONS",
            headers={
                "Origin": "http://example.test",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "if-none-match, x-requested-with",
            },
        )
        with urllib.request.urlopen(preflight, timeout=10) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            assert resp.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
            assert (
                resp.headers["Access-Control-Allow-Headers"]
                == "if-none-match, x-requested-with"
            )
    finally:
        process.terminate()
        process.communicate(timeout=10)
