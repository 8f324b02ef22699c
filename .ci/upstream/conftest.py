"""Run aiohttp's own file tests with ConditionalFileResponse and add_static in place.

``run.py`` copies this file beside the test module taken from the aiohttp sdist.  It
stands in for aiohttp's own ``tests/conftest.py``, providing only the fixtures that
module uses, and swaps the class before any test runs.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import aiohttp.web_urldispatcher
import pytest
from aiohttp.compression_utils import ZLibBackend, set_zlib_backend

from aiohttp_conditional import ConditionalFileResponse, add_static

pytest_plugins = ["aiohttp.pytest_plugin"]

aiohttp.web.FileResponse = ConditionalFileResponse  # type: ignore[misc]
aiohttp.web_urldispatcher.FileResponse = ConditionalFileResponse  # type: ignore[attr-defined]


def _add_static(
    self: aiohttp.web_urldispatcher.UrlDispatcher, prefix: str, path: Any, **kwargs: Any
) -> aiohttp.web.StaticResource:
    return add_static(self, prefix, path, **kwargs)


# router.add_static, and web.static through it, make our resource.
aiohttp.web_urldispatcher.UrlDispatcher.add_static = _add_static  # type: ignore[method-assign]


# Tests that take chmod 000 to deny a read: root is never denied, so as root they fail
# for aiohttp's own classes too.  Ours are tested denied for real in tests/.
_NEED_AN_ORDINARY_USER = (
    "test_static_directory_without_read_permission",
    "test_static_file_without_read_permission",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "skip_blockbuster: unused outside aiohttp")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        return
    skip = pytest.mark.skip(reason="as root, chmod 000 denies nothing")
    for item in items:
        if item.name.startswith(_NEED_AN_ORDINARY_USER):
            item.add_marker(skip)


@pytest.fixture
def unix_sockname() -> Iterator[str]:
    # AF_UNIX paths are short: a directory of its own right under the temp root.
    with tempfile.TemporaryDirectory(prefix="s") as directory:
        yield os.path.join(directory, "socket.sock")


@pytest.fixture(params=["zlib"])
def parametrize_zlib_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    original = ZLibBackend._zlib_backend
    set_zlib_backend(pytest.importorskip(request.param))
    yield
    set_zlib_backend(original)


@pytest.fixture
def tls_certificate_authority() -> Any:
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture
def ssl_ctx(tls_certificate_authority: Any) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate = tls_certificate_authority.issue_cert("localhost", "127.0.0.1")
    certificate.configure_cert(context)
    return context


@pytest.fixture
def client_ssl_ctx(tls_certificate_authority: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH)
    tls_certificate_authority.configure_trust(context)
    return context
