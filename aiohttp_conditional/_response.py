"""ConditionalFileResponse: a FileResponse that decides everything before it opens.

The response is an adapter between aiohttp and two modules: `_lookup`, which finds
the file and decides the answer, and `_send`, which puts a body on the wire.  Where
the lookup runs, on the event loop or in one executor job, `_jobs` decides.
"""

from __future__ import annotations

import asyncio
import functools
import io
import mimetypes
import os
import pathlib
from typing import TYPE_CHECKING, Final, Literal

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.typedefs import LooseHeaders, PathLike
from multidict import CIMultiDictProxy

from ._clock import moment
from ._digest import refuses_sha256
from ._disposition import content_disposition
from ._encoding import DEFAULT_ORDER
from ._etags import ETagFunction
from ._fields import FIELD_VALUE, TOKEN, add_vary
from ._jobs import UseExecutor, check_use_executor, closer, run
from ._kernel import FileSystem
from ._lookup import Asked, Options, Outcome, look_up
from ._preconditions import Conditions, FileResponseState, format_http_date
from ._send import Parts, Reader, cut_short, send_parts, send_range

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest

__all__ = ("ConditionalFileResponse",)

DEFAULT_CHUNK_SIZE: Final = 256 * 1024
_FALLBACK_CONTENT_TYPE: Final = "application/octet-stream"

# Content-Type by extension, as upstream guesses it: compression suffixes name archive
# types of their own instead of being taken as an encoding of the inner type.
_CONTENT_TYPES: Final = mimetypes.MimeTypes()
_CONTENT_TYPES.encodings_map.clear()
for _type, _suffix in (
    ("application/gzip", ".gz"),
    ("application/x-brotli", ".br"),
    ("application/x-bzip2", ".bz2"),
    ("application/x-compress", ".Z"),
    ("application/x-xz", ".xz"),
):
    _CONTENT_TYPES.add_type(_type, _suffix)

# RFC 9110 §15.4.5: a 304 carries no representation metadata beyond the validators and
# caching fields, so the fields that describe a body go.
_BODY_HEADERS: Final = (
    hdrs.CONTENT_TYPE,
    hdrs.CONTENT_LENGTH,
    hdrs.CONTENT_ENCODING,
    hdrs.CONTENT_LANGUAGE,
    hdrs.CONTENT_RANGE,
    hdrs.CONTENT_DISPOSITION,
)
_STATUS: Final = {
    FileResponseState.NOT_MODIFIED: 304,
    FileResponseState.PRECONDITION_FAILED: 412,
    FileResponseState.RANGE_NOT_SATISFIABLE: 416,
    FileResponseState.FORBIDDEN: 403,
    FileResponseState.NOT_FOUND: 404,
}


def content_type_of(path: str) -> str | None:
    """Return the media type of a file by its name, as the response guesses it."""
    return _CONTENT_TYPES.guess_type(path)[0]


def _field(headers: CIMultiDictProxy[str], name: str) -> str | None:
    values = headers.getall(name, None)
    if values is None:
        return None
    return values[0] if len(values) == 1 else ", ".join(values)


_NO_CONDITIONS: Final = Conditions()
_REPR_DIGEST: Final = "Repr-Digest"
_WANT_REPR_DIGEST: Final = "Want-Repr-Digest"


def conditions_of(headers: CIMultiDictProxy[str]) -> Conditions:
    """Return the conditional and Range fields of a request."""
    return Conditions(
        if_match=_field(headers, hdrs.IF_MATCH),
        if_none_match=_field(headers, hdrs.IF_NONE_MATCH),
        if_modified_since=_field(headers, hdrs.IF_MODIFIED_SINCE),
        if_unmodified_since=_field(headers, hdrs.IF_UNMODIFIED_SINCE),
        if_range=_field(headers, hdrs.IF_RANGE),
        range=_field(headers, hdrs.RANGE),
    )


def accept_encoding_of(headers: CIMultiDictProxy[str]) -> str | None:
    """Return a request's Accept-Encoding, its lines joined."""
    return _field(headers, hdrs.ACCEPT_ENCODING)


def refuses_digest_of(headers: CIMultiDictProxy[str]) -> bool:
    """Tell whether a request's Want-Repr-Digest calls our digest not acceptable."""
    return refuses_sha256(_field(headers, _WANT_REPR_DIGEST))


class ConditionalFileResponse(web.FileResponse):
    """A FileResponse that answers conditional requests exactly as RFC 9110 says.

    It is constructed like :class:`aiohttp.web.FileResponse`, plus keyword-only options:

    ``etag``, ``last_modified``
        Set either to False to neither send that validator nor honour it in requests.
        ``etag="content"`` makes the entity-tag a hash of the file's bytes, read once
        per version of the file, so that servers with copies of the same files agree;
        or pass a function ``(path, stat_result) -> str`` that returns the tag.
    ``cache_control``
        A Cache-Control value for the 200, 206 and 304 answers.
    ``precompressed``
        The content-codings whose variants (``.br``, ``.zst``, ``.gz`` beside the
        file) may be sent, in the order to prefer them when the client weighs several
        alike; ``()`` sends only the file itself.
    ``digest``
        True to send ``Repr-Digest: sha-256=:...:`` (RFC 9530) on every 200 and 206
        and their HEAD: the SHA-256 of the whole representation sent (a variant's
        own bytes; the whole file for a range), computed once per version of the
        file, as ``etag="content"`` computes its hash (which sends it too).  A file
        changed within the last second gets none yet; a request whose
        ``Want-Repr-Digest`` gives ``sha-256`` a 0 gets none.
    ``filename``, ``disposition``
        Send ``Content-Disposition`` (RFC 6266): ``"attachment"`` to have the file
        saved, ``"inline"`` to have it shown, under ``filename`` (the file's own name
        if not given; a name alone means ``"attachment"``).  A name that is not plain
        ASCII goes as ``filename*`` (RFC 8187) after an ASCII fallback; no name can
        add a field or a directory.
    ``text_charset``
        A charset (``"utf-8"``) for the Content-Type of ``text/*`` files, as
        aiohttp's next release takes it: ``text/html; charset=utf-8``.  Also the
        sixth positional argument, as there.
    ``use_executor``
        Where the stat, the decision and the open run.  ``"auto"`` (the default):
        on the event loop when the kernel can answer every step from its caches on
        a local file system (Linux 5.12 and later), else in one executor job.
        ``True``: always in the job.  ``False``: always on the event loop, which a
        cold disk or a network file system blocks.

    :meth:`prepare` stats the file, evaluates every precondition and opens the file
    only when it is to be sent, all on the event loop or all in one executor job.
    Validators are issued only once the file has stayed unchanged for a second and
    follow its ctime as well as its mtime, so no client is ever told that a stale copy
    is current.  After :meth:`prepare`, :attr:`state` tells what was answered.
    """

    def __init__(
        self,
        path: PathLike,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        status: int = 200,
        reason: str | None = None,
        headers: LooseHeaders | None = None,
        text_charset: str | None = None,
        *,
        etag: bool | Literal["content"] | ETagFunction = True,
        last_modified: bool = True,
        cache_control: str | None = None,
        use_executor: UseExecutor = "auto",
        precompressed: tuple[str, ...] = DEFAULT_ORDER,
        digest: bool = False,
        filename: str | None = None,
        disposition: Literal["attachment", "inline"] | None = None,
    ) -> None:
        """Answer a request with the file at ``path``, when prepared.

        ``chunk_size``, ``status``, ``reason``, ``headers`` and ``text_charset`` are
        ``web.FileResponse``'s; the keyword-only options are described on the class.
        A bad option raises ``ValueError`` or ``TypeError`` here, not when prepared.
        """
        # Not FileResponse.__init__: it builds a pathlib.Path, which costs more than the
        # rest of a 304; the string is all that is needed, and _path stays available.
        web.StreamResponse.__init__(self, status=status, reason=reason, headers=headers)
        self._fspath = os.fspath(path)
        self._chunk_size = chunk_size
        self._options = Options.of(etag, last_modified, precompressed, digest)
        if cache_control is not None and not FIELD_VALUE.match(cache_control):
            # aiohttp would refuse to send it: fail here, not on every request.
            raise ValueError(f"cache_control is not a header value: {cache_control!r}")
        self._cache_control = cache_control
        if text_charset is not None and not (
            isinstance(text_charset, str) and TOKEN.match(text_charset)
        ):
            raise ValueError(f"text_charset is not a charset name: {text_charset!r}")
        self._text_charset = text_charset
        self._use_executor = check_use_executor(use_executor)
        self._disposition: str | None = None
        if filename is not None or disposition is not None:
            if filename is not None and not isinstance(filename, str):
                raise TypeError(f"filename must be a str, not {filename!r}")
            self._disposition = content_disposition(
                "attachment" if disposition is None else disposition,
                os.fsdecode(os.path.basename(self._fspath))
                if filename is None
                else filename,
            )
        # Set when the lookup already ran before prepare(), as the static route does
        # so that it can raise HTTPNotFound from its handler.
        self._outcome: Outcome | None = None
        self.state: FileResponseState | None = None

    @property
    def use_executor(self) -> UseExecutor:
        """Where this response's lookup runs: ``"auto"``, True or False."""
        return self._use_executor

    @property
    def _path(self) -> pathlib.Path:
        # FileResponse's attribute, for code that reads it.
        return pathlib.Path(self._fspath)

    @_path.setter
    def _path(self, path: PathLike) -> None:
        self._fspath = os.fspath(path)

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        """Decide the answer from the file, then send its headers and body."""
        if self.prepared:
            return await web.StreamResponse.prepare(self, request)
        if self._outcome is None:
            headers = request.headers
            asked = Asked(
                request.method,
                # RFC 9110 §13.2.1: preconditions (and so If-Range and Range) only
                # apply to what would otherwise be a 2xx; a caller's 404 page is sent.
                conditions_of(headers) if 200 <= self.status < 300 else _NO_CONDITIONS,
                accept_encoding_of(headers),
                moment(),
                self._options.digest and refuses_digest_of(headers),
            )
            await run(self._use_executor, functools.partial(self._look_up, asked))
        # From here on prepare() owns the file the lookup opened, and closes it.
        outcome, self._outcome = self._outcome, None
        assert outcome is not None
        self.state = outcome.decision.state
        if outcome.date is not None and hdrs.DATE not in self._headers:
            self._headers[hdrs.DATE] = format_http_date(outcome.date)
        if outcome.decision.state is not FileResponseState.SEND:
            return await self._answer_without_body(request, outcome)
        file = outcome.file  # None when the lookup read the body itself
        try:
            return await self._answer_with_body(request, outcome, file)
        finally:
            if file is None:
                pass
            elif self._use_executor is False:
                file.close()
            else:
                # Closed by a later executor job, so that neither this connection
                # nor the event loop waits on it.
                loop = asyncio.get_running_loop()
                closer(loop).add(loop, file)

    def __del__(self) -> None:
        # Never prepared (a middleware sent another response, or the request was
        # cancelled while its job ran): close what the lookup opened for it.
        outcome = getattr(self, "_outcome", None)
        if outcome is not None:
            outcome.close()

    def _look_up(self, asked: Asked, fs: FileSystem) -> Outcome:
        # Kept on the response as well, for __del__ should it never be prepared.
        self._outcome = outcome = look_up(fs, self._fspath, self._options, asked)
        return outcome

    def _set_caching_headers(self, outcome: Outcome) -> None:
        """Set what a 200, a 206 and a 304 of this file all carry (RFC 9110 §15.4.5)."""
        headers = self._headers
        validators = outcome.validators
        assert validators is not None
        if validators.etag is not None:
            headers[hdrs.ETAG] = validators.etag
        if validators.last_modified is not None:
            headers[hdrs.LAST_MODIFIED] = format_http_date(validators.last_modified)
        if self._cache_control is not None:
            headers[hdrs.CACHE_CONTROL] = self._cache_control
        self._set_vary(outcome)

    def _set_vary(self, outcome: Outcome) -> None:
        """Say that the answer depends on Accept-Encoding where a variant exists."""
        if outcome.has_variants:
            add_vary(self._headers, hdrs.ACCEPT_ENCODING)

    async def _answer_without_body(
        self, request: BaseRequest, outcome: Outcome
    ) -> AbstractStreamWriter | None:
        state = outcome.decision.state
        self.set_status(_STATUS[state])
        if state is FileResponseState.NOT_MODIFIED:
            self._set_caching_headers(outcome)
            headers = self._headers
            for name in _BODY_HEADERS:
                headers.popall(name, None)
        else:
            self._set_vary(outcome)
            if state is FileResponseState.RANGE_NOT_SATISFIABLE:
                # RFC 9110 §15.5.17: the current length, for the client to retry with.
                self._headers[hdrs.CONTENT_RANGE] = f"bytes */{outcome.size}"
            self.content_length = 0
        return await web.StreamResponse.prepare(self, request)

    async def _answer_with_body(
        self, request: BaseRequest, outcome: Outcome, file: io.FileIO | None
    ) -> AbstractStreamWriter | None:
        headers = self._headers
        size = outcome.size
        if hdrs.CONTENT_TYPE not in headers:
            content_type = content_type_of(self._fspath)
            if content_type is None:
                content_type = _FALLBACK_CONTENT_TYPE
            elif self._text_charset is not None and content_type.startswith("text/"):
                content_type = f"{content_type}; charset={self._text_charset}"
            headers[hdrs.CONTENT_TYPE] = content_type
        if self._disposition is not None and hdrs.CONTENT_DISPOSITION not in headers:
            headers[hdrs.CONTENT_DISPOSITION] = self._disposition
        if outcome.encoding is not None:
            headers[hdrs.CONTENT_ENCODING] = outcome.encoding
            # Already compressed: never compress it again.
            self._compression = False
        self._set_caching_headers(outcome)
        if 200 <= self.status < 300 and not outcome.injected:
            # A page made anew with a script added (a live route's) has no ranges.
            headers[hdrs.ACCEPT_RANGES] = "bytes"
        if (
            outcome.digest is not None
            and 200 <= self.status < 300
            # aiohttp compressing the body makes another representation (RFC 9530
            # §3), whose bytes were never hashed.
            and not self._compression
        ):
            headers[_REPR_DIGEST] = outcome.digest
        ranges = outcome.decision.ranges
        if len(ranges) > 1:
            assert file is not None
            assert outcome.stat is not None
            parts = Parts.of(ranges, size, headers[hdrs.CONTENT_TYPE], outcome.stat)
            if parts.length < size:
                return await self._send_parts(request, file, parts)
            ranges = ()  # §14.2: rather the whole file than more bytes than it has
        start, stop = ranges[0] if ranges else (0, size)
        if ranges:
            self.set_status(206)
            headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{stop - 1}/{size}"
        self.content_length = count = stop - start
        status = self.status
        if (
            count == 0
            or request.method == hdrs.METH_HEAD
            or status in (204, 304)
            or 100 <= status < 200
        ):
            return await web.StreamResponse.prepare(self, request)
        if outcome.data is not None:
            if request.transport is None:
                raise ConnectionResetError("Connection lost")
            # Headers and body in one write.
            self._send_headers_immediately = False
            writer = await web.StreamResponse.prepare(self, request)
            assert writer is not None
            await writer.write(outcome.data)
            return writer
        assert file is not None
        assert outcome.stat is not None
        writer = await web.StreamResponse.prepare(self, request)
        assert writer is not None
        sent = await send_range(
            request,
            writer,
            file,
            start,
            count,
            outcome.stat,
            self._reader(),
            sendfile=not self.compression,
        )
        if not sent:
            self._cut_short(request)
        else:
            await self.write_eof()
        return writer

    async def _send_parts(
        self, request: BaseRequest, file: io.FileIO, parts: Parts
    ) -> AbstractStreamWriter:
        """Send a multipart/byteranges body (RFC 9110 §14.6)."""
        self.set_status(206)
        self._headers[hdrs.CONTENT_TYPE] = parts.content_type
        self.content_length = parts.length
        writer = await web.StreamResponse.prepare(self, request)
        assert writer is not None
        if request.method != hdrs.METH_HEAD:
            if await send_parts(writer, file, parts, self._reader()):
                await writer.drain()
            else:
                self._cut_short(request)
        return writer

    def _reader(self) -> Reader:
        # Only where the caller asked for everything on the loop does it read there:
        # a body's bytes are rarely all cached.
        return Reader(self._chunk_size, self._use_executor is not False)

    def _cut_short(self, request: BaseRequest) -> None:
        """End a response whose file changed while it was sent (see cut_short)."""
        self.force_close()
        cut_short(request)


def decided_response(
    path: str,
    outcome: Outcome,
    *,
    chunk_size: int,
    cache_control: str | None,
    use_executor: UseExecutor,
    status: int = 200,
    headers: LooseHeaders | None = None,
    text_charset: str | None = None,
) -> ConditionalFileResponse:
    """Return a response that answers with an outcome the caller looked up.

    The static route looks the file up itself, to raise 404 from its handler; the
    response takes over the outcome's open file and closes it.
    """
    response = ConditionalFileResponse(
        path,
        chunk_size=chunk_size,
        status=status,
        headers=headers,
        text_charset=text_charset,
        cache_control=cache_control,
        use_executor=use_executor,
    )
    response._outcome = outcome
    return response
