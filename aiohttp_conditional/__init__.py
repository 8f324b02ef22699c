"""Serve files with aiohttp, answering conditional requests exactly as RFC 9110 says."""

from ._preconditions import FileResponseState
from ._response import ConditionalFileResponse
from ._static import ConditionalStaticResource, add_static, static

__version__ = "0.1.0.dev0"

__all__ = (
    "ConditionalFileResponse",
    "ConditionalStaticResource",
    "FileResponseState",
    "add_static",
    "static",
)
