"""Headless Chromium driven over the DevTools protocol, for the tests of real browsers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """The least of the DevTools protocol: send a command, wait for an event."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        tabs: Callable[[], contextlib.AbstractAsyncContextManager[DevTools]]
        | None = None,
    ) -> None:
        self.ws = ws
        self.next_id = 0
        self._tabs = tabs

    def new_tab(self) -> contextlib.AbstractAsyncContextManager[DevTools]:
        """Open another tab of the same browser, at about:blank, for as long as used."""
        assert self._tabs is not None
        return self._tabs()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_str(
            json.dumps({"id": self.next_id, "method": method, "params": params})
        )
        while True:
            message = json.loads(await self.ws.receive_str())
            if message.get("id") == self.next_id:
                result: dict[str, Any] = message.get("result", {})
                return result

    async def until(self, event: str) -> None:
        while json.loads(await self.ws.receive_str()).get("method") != event:
            pass

    async def load(self, method: str, **params: Any) -> str:
        """Navigate or reload, wait for the load event; return the version shown."""
        self.next_id += 1
        await self.ws.send_str(
            json.dumps({"id": self.next_id, "method": method, "params": params})
        )
        await asyncio.wait_for(self.until("Page.loadEventFired"), 30)
        result = await self.call(
            "Runtime.evaluate",
            expression="document.body.dataset.version",
            returnByValue=True,
        )
        return str(result["result"].get("value"))


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[DevTools]:
    """Run headless Chromium with a page target, as the flags this machine needs."""
    assert CHROMIUM is not None
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as session:

            @contextlib.asynccontextmanager
            async def attached(target: dict[str, Any]) -> AsyncIterator[DevTools]:
                async with session.ws_connect(
                    target["webSocketDebuggerUrl"], max_msg_size=0
                ) as ws:
                    tools = DevTools(ws, new_tab)
                    await tools.call("Page.enable")
                    yield tools

            @contextlib.asynccontextmanager
            async def new_tab() -> AsyncIterator[DevTools]:
                url = f"http://127.0.0.1:{port}/json/new?about:blank"
                async with session.put(url) as resp:
                    target = await resp.json(content_type=None)
                async with attached(target) as tools:
                    yield tools

            async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json(content_type=None)
            page = next(target for target in targets if target["type"] == "page")
            async with attached(page) as tools:
                yield tools
    finally:
        process.terminate()
        process.wait(30)
