"""Run aiohttp's own FileResponse tests with ConditionalFileResponse in its place.

``run.py`` copies this file beside the test module taken from the aiohttp sdist.  It
stands in for aiohttp's own ``tests/conftest.py``, providing only the fixtures that
module uses, and swaps the class before any test runs.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import aiohttp.web_urldispatcher
import pytest
from aiohttp.compression_utils import ZLibBackend, set_zlib_backend

from aiohttp_conditional import ConditionalFileResponse

pytest_plugins = ["aiohttp.pytest_plugin"]

aiohttp.web.FileResponse = ConditionalFileResponse  # type: ignore[misc]
aiohttp.web_urldispatcher.FileResponse = ConditionalFileResponse  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "skip_blockbuster: unused outside aiohttp")


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
