"""An outcome's body on the wire: sendfile or reads, multipart, and cutting short.

Every body is sent so that its bytes are those its headers describe: the last byte
waits until the open file is known to be unchanged, and a file rewritten meanwhile
ends the connection instead of passing off other bytes (see `cut_short`).
"""

from __future__ import annotations

import asyncio
import io
import os
import secrets
from typing import TYPE_CHECKING, Final, NamedTuple

from aiohttp.abc import AbstractStreamWriter

from ._lookup import unchanged
from ._platform import pread

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest

__all__ = ("NOSENDFILE", "Parts", "cut_short", "send_parts", "send_range")

# The same switch as aiohttp's: send through reads instead of sendfile(2).
NOSENDFILE: Final = bool(os.environ.get("AIOHTTP_NOSENDFILE"))


class Parts(NamedTuple):
    """The framing of a multipart/byteranges body, whose length is known up front."""

    ranges: tuple[tuple[int, int], ...]
    heads: tuple[bytes, ...]  # each part's delimiter and header fields
    tail: bytes
    content_type: str
    length: int
    decided: os.stat_result  # the file as the headers describe it

    @classmethod
    def of(
        cls,
        ranges: tuple[tuple[int, int], ...],
        size: int,
        content_type: str,
        decided: os.stat_result,
    ) -> Parts:
        """Frame ``ranges`` of a file of ``size`` bytes (RFC 9110 §14.6)."""
        boundary = secrets.token_hex(16)
        heads = []
        for index, (start, stop) in enumerate(ranges):
            # The CRLF before each delimiter but the first belongs to the delimiter.
            head = "\r\n" if index else ""
            head += f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            head += f"Content-Range: bytes {start}-{stop - 1}/{size}\r\n\r\n"
            heads.append(head.encode("utf-8"))
        tail = f"\r\n--{boundary}--\r\n".encode("ascii")
        length = sum(map(len, heads)) + sum(b - a for a, b in ranges) + len(tail)
        return cls(
            ranges,
            tuple(heads),
            tail,
            f"multipart/byteranges; boundary={boundary}",
            length,
            decided,
        )


class Reader(NamedTuple):
    """How a body is read when it is not sent with sendfile(2)."""

    chunk_size: int
    in_executor: bool  # read in the executor, or on the event loop


async def send_range(
    request: BaseRequest,
    writer: AbstractStreamWriter,
    file: io.FileIO,
    offset: int,
    count: int,
    decided: os.stat_result,
    reader: Reader,
    *,
    sendfile: bool,
) -> bool:
    """Send ``count`` bytes of the file from ``offset``; False if it was cut short."""
    # The last byte waits until the file is known to be the one the headers
    # describe: a file rewritten in place meanwhile is cut short, never passed off.
    sendfile = sendfile and not NOSENDFILE
    last = offset + count - 1
    for start, length in ((offset, count - 1), (last, 1)):
        if length == 0:
            continue  # a one-byte body is its last byte
        if start == last and not unchanged(file, decided):
            return False
        if sendfile:
            try:
                sent = await _sendfile(request, file, start, length)
            except NotImplementedError:
                sendfile = False  # no sendfile(2) here: read and write
        if not sendfile:
            sent = await _copy(writer, file, start, length, reader)
        if sent < length:
            return False
    return True


async def send_parts(
    writer: AbstractStreamWriter, file: io.FileIO, parts: Parts, reader: Reader
) -> bool:
    """Send a multipart/byteranges body part by part; False if it was cut short."""
    for head, (start, stop) in zip(parts.heads, parts.ranges, strict=True):
        await writer.write(head)
        if await _copy(writer, file, start, stop - start - 1, reader) < (
            stop - start - 1
        ):
            return False
        # As for a single body, the last byte waits for the file to be checked.
        if not unchanged(file, parts.decided) or (
            await _copy(writer, file, stop - 1, 1, reader) < 1
        ):
            return False
    await writer.write(parts.tail)
    return True


def cut_short(request: BaseRequest) -> None:
    """End the connection of a response whose file changed while it was sent.

    Its body can no longer be the one its headers describe, so the client sees an
    incomplete response, never other bytes passed off as the whole (nor the next
    response read as the rest of it).
    """
    if request.transport is not None:
        request.transport.close()


async def _sendfile(
    request: BaseRequest, file: io.FileIO, offset: int, count: int
) -> int:
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("Connection lost")
    return await asyncio.get_running_loop().sendfile(transport, file, offset, count)


async def _copy(
    writer: AbstractStreamWriter,
    file: io.FileIO,
    offset: int,
    count: int,
    reader: Reader,
) -> int:
    """Write part of the file through the writer, a chunk at a time.

    Return how many bytes were written: fewer than ``count`` if the file shrank.
    """
    loop = asyncio.get_running_loop()
    fd = file.fileno()
    start = offset
    while count > 0:
        size = min(reader.chunk_size, count)
        if reader.in_executor:
            chunk = await loop.run_in_executor(None, pread, fd, size, offset)
        else:
            chunk = pread(fd, size, offset)
        if not chunk:
            break
        await writer.write(chunk)
        offset += len(chunk)
        count -= len(chunk)
    return offset - start
