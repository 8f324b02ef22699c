"""asv: each outcome of a file request, each implementation, side by side.

``time_request`` is the whole request over a real loopback socket to a server in its
own process; ``track_throughput`` the responses a second that server gives four
connections at once; ``time_prepare`` is ``prepare()`` alone, in this process;
``peakmem_burst`` is a burst of requests against a server in this process.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from aiohttp_conditional import ConditionalFileResponse

from ._common import (
    IMPLS,
    SCENARIOS,
    SMALL,
    Client,
    Load,
    Server,
    applies,
    build_request,
    make_files,
    validators_of,
)
from ._server import make_app


class Request:
    """The whole request over loopback, from a lean keep-alive client."""

    params = (IMPLS, SCENARIOS)
    param_names: ClassVar[list[str]] = ["impl", "scenario"]
    timeout = 120

    def setup_cache(self) -> str:
        return str(make_files(Path(tempfile.mkdtemp(prefix="bench-"))))

    def setup(self, root: str, impl: str, scenario: str) -> None:
        if not applies(impl, scenario):
            raise NotImplementedError
        self.server = Server(Path(root))
        self.client = Client(self.server.port)
        validators = validators_of(self.client, impl)
        self.raw = build_request(impl, scenario, validators)
        self.has_body = scenario != "head"

    def teardown(self, root: str, impl: str, scenario: str) -> None:
        if hasattr(self, "client"):  # asv tears down skipped combinations too
            self.client.close()
            self.server.stop()

    def time_request(self, root: str, impl: str, scenario: str) -> None:
        self.client.request(self.raw, self.has_body)


class Throughput:
    """Responses a second with four connections at once, as wrk -c4 measures it."""

    params = (IMPLS, SCENARIOS)
    param_names: ClassVar[list[str]] = ["impl", "scenario"]
    unit = "responses/s"
    timeout = 120

    def setup_cache(self) -> str:
        return str(make_files(Path(tempfile.mkdtemp(prefix="bench-"))))

    def setup(self, root: str, impl: str, scenario: str) -> None:
        if not applies(impl, scenario):
            raise NotImplementedError
        self.server = Server(Path(root))
        client = Client(self.server.port)
        self.raw = build_request(impl, scenario, validators_of(client, impl))
        client.close()
        self.has_body = scenario != "head"
        self.load = Load(self.server.port, 4)
        self.load.run(self.raw, self.has_body, 0.1)  # warm

    def teardown(self, root: str, impl: str, scenario: str) -> None:
        if hasattr(self, "load"):  # asv tears down skipped combinations too
            self.load.close()
            self.server.stop()

    def track_throughput(self, root: str, impl: str, scenario: str) -> float:
        return self.load.run(self.raw, self.has_body, 1.0)


class Prepare:
    """prepare() alone, for the answers that send no body."""

    params = (("upstream-handler", "ours-handler", "floor"), ("304", "412", "head"))
    param_names: ClassVar[list[str]] = ["impl", "scenario"]

    def setup_cache(self) -> str:
        return str(make_files(Path(tempfile.mkdtemp(prefix="bench-"))))

    def setup(self, root: str, impl: str, scenario: str) -> None:
        if impl == "floor" and scenario != "304":
            raise NotImplementedError
        self.loop = asyncio.new_event_loop()
        self.path = Path(root) / SMALL
        self.cls: Any = {
            "upstream-handler": web.FileResponse,
            "ours-handler": ConditionalFileResponse,
        }.get(impl)
        headers = CIMultiDict({"Accept-Encoding": "gzip, deflate, br, zstd"})
        if scenario == "304":
            headers["If-None-Match"] = "*"
        elif scenario == "412":
            headers["If-Match"] = '"not-this-one"'
        method = "HEAD" if scenario == "head" else "GET"
        self.request = make_mocked_request(
            method, "/f", headers=headers, loop=self.loop
        )

    def teardown(self, root: str, impl: str, scenario: str) -> None:
        if hasattr(self, "loop"):  # asv tears down skipped combinations too
            self.loop.close()

    def time_prepare(self, root: str, impl: str, scenario: str) -> None:
        response = web.Response(status=304) if self.cls is None else self.cls(self.path)
        self.loop.run_until_complete(response.prepare(self.request))


class Burst:
    """Peak memory of a server answering a burst of requests."""

    params = (("upstream-handler", "ours-handler", "ours-static"), ("304", "200"))
    param_names: ClassVar[list[str]] = ["impl", "scenario"]
    timeout = 120

    def setup_cache(self) -> str:
        return str(make_files(Path(tempfile.mkdtemp(prefix="bench-"))))

    def setup(self, root: str, impl: str, scenario: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(make_app(Path(root)), access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", 0).start())
        port = self.runner.addresses[0][1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = Client(port)
        validators = validators_of(self.client, impl)
        kind = "304-if-none-match" if scenario == "304" else "200-10KiB"
        self.raw = build_request(impl, kind, validators)

    def teardown(self, root: str, impl: str, scenario: str) -> None:
        self.client.close()
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def peakmem_burst(self, root: str, impl: str, scenario: str) -> None:
        for _ in range(2000):
            self.client.request(self.raw, True)
