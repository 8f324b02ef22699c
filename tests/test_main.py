"""python -m aiohttp_conditional DIR, started as a real process."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

import aiohttp_conditional

PROG = "python -m aiohttp_conditional"


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
    process = start(str(root), "--port", str(port), "--quiet")
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        assert line.strip() == (
            f"Serving {root} at http://127.0.0.1:{port}/ (press Ctrl+C to quit)"
        )
        yield f"http://127.0.0.1:{port}"
    finally:
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
            assert "Access-Control-Allow-Private-Network" not in resp.headers
        # A page on a public site asking for this loopback server (Chromium's Private
        # Network Access), and a plain OPTIONS, which says what is allowed.
        preflight.add_header("Access-Control-Request-Private-Network", "true")
        with urllib.request.urlopen(preflight, timeout=10) as resp:
            assert resp.headers["Access-Control-Allow-Private-Network"] == "true"
        plain = urllib.request.Request(f"http://127.0.0.1:{port}/", method="OPTIONS")
        with urllib.request.urlopen(plain, timeout=10) as resp:
            assert resp.headers["Allow"] == "GET, HEAD, OPTIONS"
    finally:
        process.terminate()
        process.communicate(timeout=10)


# --- the habits of http.server ------------------------------------------------------------


def started(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start the CLI server; return it and the URL it printed."""
    process = start(*args)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.fullmatch(r"Serving .* at (\S+) \(press Ctrl\+C to quit\)\n", line)
    if match is None:
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"no URL printed: {line!r} {err!r}")
    return process, match[1]


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    return process.returncode, err


def test_an_access_log_line_a_request_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    process, url = started(str(tmp_path), "--port", "0")
    try:
        assert fetch(url + "a.txt") == (200, b"hello\n")
        assert fetch(url + "missing?x=1")[0] == 404
        assert fetch(url + "a.txt", {"Range": "bytes=0-1"}) == (206, b"he")
    finally:
        code, err = stop(process)
    assert code == 0
    lines = err.splitlines()
    # As http.server writes them, with the size sent.
    stamp = r"\[\d\d/[A-Z][a-z]{2}/\d{4} \d\d:\d\d:\d\d\]"
    assert len(lines) == 3, err
    assert re.fullmatch(
        rf'127\.0\.0\.1 - - {stamp} "GET /a\.txt HTTP/1\.1" 200 6', lines[0]
    )
    assert re.fullmatch(
        rf'127\.0\.0\.1 - - {stamp} "GET /missing\?x=1 HTTP/1\.1" 404 \d+', lines[1]
    )
    assert re.fullmatch(
        rf'127\.0\.0\.1 - - {stamp} "GET /a\.txt HTTP/1\.1" 206 2', lines[2]
    )


def test_quiet_writes_no_log(tmp_path: Path) -> None:
    process, url = started(str(tmp_path), "--port", "0", "-q")
    try:
        assert fetch(url)[0] == 403
    finally:
        code, err = stop(process)
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    ("options", "host"),
    [
        (("-p", "0"), "127.0.0.1"),
        (("--bind", "::1", "--port", "0"), "[::1]"),
        (("-b", "localhost", "-p", "0"), "localhost"),
    ],
    ids=["port-0", "ipv6", "name"],
)
def test_the_url_printed_is_the_one_that_works(
    tmp_path: Path, options: tuple[str, ...], host: str
) -> None:
    (tmp_path / "index.html").write_text("<p>hi</p>\n")
    process, url = started("-d", str(tmp_path), "-q", *options)
    try:
        assert re.fullmatch(rf"http://{re.escape(host)}:[1-9][0-9]*/", url)
        assert fetch(url) == (200, b"<p>hi</p>\n")
    finally:
        assert stop(process) == (0, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("8080",), "8080 is not a directory; did you mean --port 8080?"),
        (("--port", "abc"), "argument -p/--port: 'abc' is not a port number"),
        (("--port", " 80"), "argument -p/--port: ' 80' is not a port number"),
        (
            ("-b", ""),
            "argument -b/--bind/--host: give an address, e.g. 127.0.0.1 or 0.0.0.0",
        ),
        (("--workers", "0"), "argument --workers: '0' is not a number of processes"),
        (
            ("--tls-key", "k.pem"),
            "--tls-key: give the certificate too, with --tls-cert",
        ),
        (("-d", "a", "b"), "two directories to serve: b and a"),
        (
            ("--cors", "-H", "Access-Control-Allow-Origin: https://a.test"),
            "--cors sets the Access-Control-* fields: give -H or --cors",
        ),
    ],
)
def test_usage_errors_name_the_option(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "aiohttp_conditional", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"{PROG}: error: {message}"


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiohttp_conditional", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert re.fullmatch(
        rf"{PROG} {re.escape(aiohttp_conditional.__version__)} "
        rf"\(aiohttp {re.escape(aiohttp.__version__)}\)\n",
        result.stdout,
    )


# --- several processes --------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def connections_of(pid: int) -> int:
    """The TCP sockets a process has open beyond its listening ones."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


@pytest.mark.parametrize("stop_by", ["SIGINT to the group", "SIGTERM"])
def test_two_workers_share_the_port_and_stop_cleanly(
    tmp_path: Path, stop_by: str
) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "aiohttp_conditional", str(tmp_path), "-p", "0", "-q",
         "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's job
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        match = re.fullmatch(
            r"Serving .* at (http://127\.0\.0\.1:\d+/) from 2 processes "
            r"\(press Ctrl\+C to quit\)\n",
            line,
        )
        assert match is not None, line
        workers = children(process.pid)
        assert len(workers) == 2
        idle = {pid: connections_of(pid) for pid in workers}
        # Twenty connections held open: the kernel spreads them over both workers.
        port = int(match[1].rsplit(":", 1)[1].rstrip("/"))
        held = []
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
            held.append(sock)
        busy = [connections_of(pid) - idle[pid] for pid in workers]
        assert all(count > 0 for count in busy), busy
        assert sum(busy) == 20
        for sock in held:
            sock.close()
    finally:
        if stop_by == "SIGTERM":
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "Traceback" not in err
    for pid in workers:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )


# --- HTTPS -------------------------------------------------------------------------------


def test_https_with_a_certificate_made_here(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_pem.write_to_path(str(key))
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.txt").write_text("secure\n")
    process, url = started(
        str(site), "-p", "0", "-q", "--tls-cert", str(cert), "--tls-key", str(key)
    )
    try:
        assert url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context()
        authority.configure_trust(context)
        with urllib.request.urlopen(url + "a.txt", context=context, timeout=10) as r:
            assert r.read() == b"secure\n"
    finally:
        assert stop(process) == (0, "")


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("missing", "{tmp}/nope.pem: no such file"),
        (
            "mismatched",
            "{tmp}/cert.pem and {tmp}/key.pem: the key is not the certificate's",
        ),
        ("not-pem", "{tmp}/cert.pem and {tmp}/key.pem: not a PEM certificate and key"),
        ("no-key", "{tmp}/cert.pem: no certificate and key in it (give the key with"),
        (
            "encrypted",
            "{tmp}/key.pem: the key is encrypted; give one without a passphrase",
        ),
    ],
)
def test_a_bad_certificate_is_a_usage_error(
    tmp_path: Path, problem: str, message: str
) -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    one, other = authority.issue_cert("localhost"), authority.issue_cert("localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    one.cert_chain_pems[0].write_to_path(str(cert))
    other.private_key_pem.write_to_path(str(key))
    tls: tuple[str, ...] = ("--tls-cert", str(cert), "--tls-key", str(key))
    if problem == "missing":
        tls = ("--tls-cert", str(cert), "--tls-key", str(tmp_path / "nope.pem"))
    elif problem == "not-pem":
        cert.write_text("hello\n")
    elif problem == "no-key":
        tls = tls[:2]
    elif problem == "encrypted":
        plain = tmp_path / "plain.pem"
        one.private_key_pem.write_to_path(str(plain))
        subprocess.run(
            ["openssl", "pkey", "-in", str(plain), "-out", str(key), "-aes256",
             "-passout", "pass:secret"],
            check=True,
        )  # fmt: skip
    # With a terminal's stdin closed: no prompt for a passphrase can be waited on.
    result = subprocess.run(
        [sys.executable, "-m", "aiohttp_conditional", str(tmp_path), *tls],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"{PROG}: error: --tls-cert/--tls-key: ")
    assert message.format(tmp=tmp_path) in last


def test_the_console_script_serves_as_the_module_does(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("aiohttp-conditional")
    if not script.exists():
        pytest.skip("the package is not installed with its scripts here")
    (tmp_path / "a.txt").write_text("a\n")
    process = subprocess.Popen(
        [str(script), str(tmp_path), "-p", "0", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        url = re.fullmatch(r"Serving .* at (\S+) \(press Ctrl\+C to quit\)\n", line)
        assert url is not None, line
        assert fetch(url[1] + "a.txt") == (200, b"a\n")
    finally:
        assert stop(process) == (0, "")


def test_a_second_server_on_the_port_of_workers_is_refused(tmp_path: Path) -> None:
    # SO_REUSEPORT would let it join the port and take half of the connections.
    first = subprocess.Popen(
        [sys.executable, "-m", "aiohttp_conditional", str(tmp_path), "-p", "0", "-q",
         "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert first.stdout is not None
    try:
        port = re.search(r":(\d+)/ from 2", first.stdout.readline())
        assert port is not None
        for workers in ("2", "1"):
            second = subprocess.run(
                [sys.executable, "-m", "aiohttp_conditional", str(tmp_path), "-p",
                 port[1], "-q", "--workers", workers],
                capture_output=True,
                text=True,
                timeout=30,
            )  # fmt: skip
            assert second.returncode == 1
            assert "address already in use" in second.stderr.lower()
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)


def test_workers_end_with_their_parent_and_a_lost_worker_is_told(
    tmp_path: Path,
) -> None:
    def serve() -> tuple[subprocess.Popen[str], list[int]]:
        process = subprocess.Popen(
            [sys.executable, "-m", "aiohttp_conditional", str(tmp_path), "-p", "0",
             "-q", "--workers", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        assert "from 2 processes" in process.stdout.readline()
        return process, children(process.pid)

    # The parent killed outright: no worker is left serving on the port.
    process, workers = serve()
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(gone(pid) is False for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in workers)
    # A worker killed: the parent says so and stops the other.
    process, workers = serve()
    os.kill(workers[0], signal.SIGKILL)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "error: a worker stopped (exit status -9); stopping the others" in err


def gone(pid: int) -> bool:
    """Whether a process has ended (a zombie waiting for its reaper has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_workers_restart_at_once_on_the_same_port(tmp_path: Path) -> None:
    # The connections the first server closed linger in TIME_WAIT on its port,
    # which must not keep the next one from it (as SO_REUSEADDR lets any server).
    port = str(free_port())
    for _ in range(2):
        process = subprocess.Popen(
            [sys.executable, "-m", "aiohttp_conditional", str(tmp_path), "-p", port,
             "-q", "--workers", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        line = process.stdout.readline()
        held = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        held.recv(65536)
        process.send_signal(signal.SIGTERM)  # the server closes the connection first
        _, err = process.communicate(timeout=30)
        held.close()
        assert "from 2 processes" in line, err
