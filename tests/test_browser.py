"""A real browser reloading a page whose script changes twice within one second.

This is the auto-reload workflow of a static-site generator, the case that made other
frameworks serve stale files: headless Chromium, driven over the DevTools protocol,
must show the newest script after every reload.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from benchmarks.load import CliServer
from tests.chromium import CHROMIUM, DevTools, chromium

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with a page target."""
    async with chromium(tmp_path / "profile") as tools:
        yield tools


def write_script(path: Path, version: int) -> None:
    # The same size every time, as a rebuilt bundle often is.
    path.write_text(f"document.body.dataset.version = '{version}';\n")


@pytest.mark.parametrize(
    ("options", "cache_control"),
    [((), "no-cache"), (("--cache-control=",), None)],
    ids=["no-cache", "no-cache-control"],
)
async def test_every_reload_shows_the_newest_script(
    browser: DevTools,
    tmp_path: Path,
    options: tuple[str, ...],
    cache_control: str | None,
) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(
        "<!doctype html><html><body><script src='app.js'></script></body></html>\n"
    )
    script = root / "app.js"
    write_script(script, 1)
    server = CliServer(root, *options)
    try:
        url = f"http://127.0.0.1:{server.port}/"
        async with aiohttp.request("GET", url + "app.js") as response:
            assert response.headers.get("Cache-Control") == cache_control
        # Early in a second, so that the rewrites below share it.
        time.sleep(1 - time.time() % 1 + 0.01)
        write_script(script, 1)
        assert await browser.load("Page.navigate", url=url) == "1"
        write_script(script, 2)
        assert await browser.load("Page.reload") == "2"
        write_script(script, 3)
        assert await browser.load("Page.reload") == "3"
        # Left alone a while, it carries validators; then changed twice again.
        time.sleep(1.1)
        assert await browser.load("Page.reload") == "3"
        write_script(script, 4)
        assert await browser.load("Page.reload") == "4"
        write_script(script, 5)
        assert await browser.load("Page.reload") == "5"
    finally:
        server.stop()


CROSS_ORIGIN_FETCHES = """
(async () => {
  const base = "%s";
  // A field no CORS rule lets through unasked: the browser sends a preflight first.
  const got = await fetch(base + "/data.txt", {headers: {"X-Requested-With": "t"}});
  const missing = await fetch(base + "/missing.txt");
  return [got.status, await got.text(), got.headers.get("ETag") !== null,
          missing.status];
})().catch(error => "blocked: " + error)
"""


@pytest.mark.parametrize("cors", [True, False], ids=["cors", "no-cors"])
async def test_a_script_of_another_origin_reads_what_cors_lets_it(
    browser: DevTools, tmp_path: Path, cors: bool
) -> None:
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text("<!doctype html><body>page</body>")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "data.txt").write_text("shared\n")
    time.sleep(1.05)  # old enough for an ETag
    page = CliServer(tmp_path / "page")
    data = CliServer(tmp_path / "data", *(("--cors",) if cors else ()))
    try:
        await browser.load("Page.navigate", url=f"http://127.0.0.1:{page.port}/")
        result = await browser.call(
            "Runtime.evaluate",
            expression=CROSS_ORIGIN_FETCHES % f"http://127.0.0.1:{data.port}",
            awaitPromise=True,
            returnByValue=True,
        )
        got = result["result"]["value"]
        if cors:
            # The ETag is readable too, and a 404 is a 404, not a network error.
            assert got == [200, "shared\n", True, 404]
        else:
            assert str(got).startswith("blocked: TypeError")
    finally:
        page.stop()
        data.stop()
