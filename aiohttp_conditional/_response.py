"""ConditionalFileResponse: a FileResponse that decides everything in one executor job."""

from __future__ import annotations

import asyncio
import contextlib
import io
import mimetypes
import os
import pathlib
import re
import secrets
import weakref
from collections.abc import Callable
from stat import S_ISREG
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, TypeVar

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.typedefs import LooseHeaders, PathLike
from multidict import CIMultiDictProxy

from ._clock import Moment, moment
from ._encoding import DEFAULT_ORDER, SUFFIXES, Variant, select_variant, variant_tag
from ._etags import ETagFunction, checked_tag, content_hash, file_identity
from ._preconditions import (
    Conditions,
    Decision,
    FileResponseState,
    Validators,
    decide,
    format_http_date,
    make_validators,
)

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest

__all__ = ("ConditionalFileResponse",)

_T = TypeVar("_T")

# The same switch as aiohttp's: send through executor reads instead of sendfile(2).
NOSENDFILE: Final = bool(os.environ.get("AIOHTTP_NOSENDFILE"))
_DEFAULT_CHUNK_SIZE: Final = 256 * 1024
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
)
# What a Cache-Control value may hold (RFC 9110 §5.5, §5.6.2): visible ASCII, spaces
# and tabs; no CR or LF, which would end the field, nor any other control character.
_FIELD_VALUE: Final = re.compile(r"[\t\x20-\x7e]*\Z")
_STATUS: Final = {
    FileResponseState.NOT_MODIFIED: 304,
    FileResponseState.PRECONDITION_FAILED: 412,
    FileResponseState.RANGE_NOT_SATISFIABLE: 416,
    FileResponseState.FORBIDDEN: 403,
    FileResponseState.NOT_FOUND: 404,
}
_OPEN_FLAGS: Final = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: a file swapped for a FIFO between stat and open must not hang the worker
# thread; it changes nothing for the regular files that are read.
_OPEN_FLAGS_CHECKED: Final = _OPEN_FLAGS | getattr(os, "O_NONBLOCK", 0)
# How long a sent file may wait for another request's job to close it.
_CLOSE_WITHIN: Final = 0.05
# A body up to this size is read by the executor job and sent in one write with the
# headers, instead of through sendfile(2), whose setup costs more than such a copy.
_READ_AHEAD: Final = 64 * 1024


class _Closer:
    """Close sent files off the event loop, without a thread hop of their own.

    A worker thread wakes up in tens of microseconds, as long as the rest of a small
    response takes; so a sent file is handed to the next executor job of any file
    response on the same loop, which closes it first, or if none comes within
    ``_CLOSE_WITHIN`` seconds, to one job that closes every file still waiting.
    """

    # No reference to the loop is kept: it is the key this closer is filed under.
    def __init__(self) -> None:
        self._files: list[io.FileIO] = []
        self._timer: asyncio.TimerHandle | None = None
        self._jobs: set[asyncio.Future[None]] = set()

    def __del__(self) -> None:
        # The loop is gone with files still waiting (closed within the 50 ms): close
        # them here rather than leave them to the collector's ResourceWarning.
        close_files(self._files)

    def add(self, loop: asyncio.AbstractEventLoop, *files: io.FileIO) -> None:
        """Have files closed by the next job, or by one of their own soon."""
        self._files.extend(files)
        if self._timer is None:
            self._timer = loop.call_later(_CLOSE_WITHIN, self._flush, loop)

    def take(self) -> list[io.FileIO]:
        """Hand the waiting files to a job that is about to run."""
        files = self._files
        if files:
            self._files = []
        return files

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if files := self.take():
            try:
                job = loop.run_in_executor(None, close_files, files)
            except RuntimeError:
                # The executor is shutting down with the loop: close them here.
                close_files(files)
                return
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)


_CLOSERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Closer] = (
    weakref.WeakKeyDictionary()
)


def closer(loop: asyncio.AbstractEventLoop) -> _Closer:
    """Return the closer of sent files for an event loop."""
    found = _CLOSERS.get(loop)
    if found is None:
        found = _CLOSERS[loop] = _Closer()
    return found


async def run_job(
    loop: asyncio.AbstractEventLoop, job: Callable[..., _T], *args: Any
) -> _T:
    """Run ``job(*args, closing)`` in the executor, ``closing`` the sent files waiting.

    Should the request be cancelled, the job may never run: its files go back to wait
    for another (closing one twice does no harm).
    """
    closing = closer(loop).take()
    try:
        return await loop.run_in_executor(None, job, *(*args, closing))
    except asyncio.CancelledError:
        closer(loop).add(loop, *closing)
        raise


def close_files(files: list[io.FileIO]) -> None:
    """Close files in an executor job; a failing close loses nothing of a sent file."""
    for file in files:
        with contextlib.suppress(OSError):
            file.close()


class _Outcome(NamedTuple):
    """What the executor job found out, for the event loop to answer with."""

    decision: Decision
    validators: Validators | None = None
    size: int = 0
    file: io.FileIO | None = None  # open only when the decision is SEND
    encoding: str | None = None
    has_variants: bool = False
    stat: os.stat_result | None = None  # what the decision was made from
    # The bytes to send, when the job read them (a small body, or none for HEAD);
    # then the file is closed already.
    data: bytes | None = None
    date: int | None = None  # the answer's Date: the second it was decided in


_FORBIDDEN: Final = _Outcome(Decision(FileResponseState.FORBIDDEN))
_NOT_FOUND: Final = _Outcome(Decision(FileResponseState.NOT_FOUND))
_NOT_FOUND_VARYING: Final = _NOT_FOUND._replace(has_variants=True)


def _field(headers: CIMultiDictProxy[str], name: str) -> str | None:
    values = headers.getall(name, None)
    if values is None:
        return None
    return values[0] if len(values) == 1 else ", ".join(values)


_NO_CONDITIONS: Final = Conditions()


def _conditions(headers: CIMultiDictProxy[str]) -> Conditions:
    return Conditions(
        if_match=_field(headers, hdrs.IF_MATCH),
        if_none_match=_field(headers, hdrs.IF_NONE_MATCH),
        if_modified_since=_field(headers, hdrs.IF_MODIFIED_SINCE),
        if_unmodified_since=_field(headers, hdrs.IF_UNMODIFIED_SINCE),
        if_range=_field(headers, hdrs.IF_RANGE),
        range=_field(headers, hdrs.RANGE),
    )


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
    ``use_executor``
        Set to False to run the stat, the decision and the open on the event loop
        instead of in the default executor.  On a local disk whose metadata is cached
        that takes microseconds and saves the round trip through a worker thread, the
        largest cost of a 304; on a network file system or a cold disk it blocks the
        event loop, which is why it is not the default.

    :meth:`prepare` runs one executor job that stats the file, evaluates every
    precondition and opens the file only when it is to be sent.  Validators are issued
    only once the file has stayed unchanged for a second and follow its ctime as well as
    its mtime, so no client is ever told that a stale copy is current.  After
    :meth:`prepare`, :attr:`state` tells what was answered.
    """

    def __init__(
        self,
        path: PathLike,
        chunk_size: int = _DEFAULT_CHUNK_SIZE,
        status: int = 200,
        reason: str | None = None,
        headers: LooseHeaders | None = None,
        *,
        etag: bool | Literal["content"] | ETagFunction = True,
        last_modified: bool = True,
        cache_control: str | None = None,
        use_executor: bool = True,
        precompressed: tuple[str, ...] = DEFAULT_ORDER,
    ) -> None:
        # Not FileResponse.__init__: it builds a pathlib.Path, which costs more than the
        # rest of a 304; the string is all that is needed, and _path stays available.
        web.StreamResponse.__init__(self, status=status, reason=reason, headers=headers)
        self._fspath = os.fspath(path)
        self._chunk_size = chunk_size
        self._send_etag = etag is not False
        self._etag_function: ETagFunction | None = None
        if etag == "content":
            self._etag_function = content_hash
        elif callable(etag):
            self._etag_function = etag
        elif not isinstance(etag, bool):
            raise ValueError(
                f"etag must be True, False, 'content' or a function: {etag!r}"
            )
        self._send_last_modified = last_modified
        if cache_control is not None and not _FIELD_VALUE.match(cache_control):
            # aiohttp would refuse to send it: fail here, not on every request.
            raise ValueError(f"cache_control is not a header value: {cache_control!r}")
        self._cache_control = cache_control
        self._use_executor = use_executor
        unknown = [coding for coding in precompressed if coding not in SUFFIXES]
        if unknown:
            raise ValueError(f"no precompressed variants of {', '.join(unknown)}")
        self._precompressed = tuple(precompressed)
        # Set when the executor job already ran before prepare(), as the static route
        # does so that it can raise HTTPNotFound from its handler.
        self._outcome: _Outcome | None = None
        # The latest ctime of the directories and the symlink the static route passed
        # through to the file: a rename of one of them is a change of the file too.
        self._above_changed_ns = 0
        self.state: FileResponseState | None = None

    @property
    def _path(self) -> pathlib.Path:
        # FileResponse's attribute, for code that reads it.
        return pathlib.Path(self._fspath)

    @_path.setter
    def _path(self, path: PathLike) -> None:
        self._fspath = os.fspath(path)

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        """Decide the answer in one executor job, then send its headers and body."""
        if self.prepared:
            return await web.StreamResponse.prepare(self, request)
        loop = asyncio.get_running_loop()
        if self._outcome is None:
            headers = request.headers
            job = (
                request.method,
                # RFC 9110 §13.2.1: preconditions (and so If-Range and Range) only
                # apply to what would otherwise be a 2xx; a caller's 404 page is sent.
                _conditions(headers) if 200 <= self.status < 300 else _NO_CONDITIONS,
                _field(headers, hdrs.ACCEPT_ENCODING),
            )
            if self._use_executor:
                await run_job(loop, self._evaluate, *job, None)
            else:
                self._evaluate(*job)
        # From here on prepare() owns the file the job opened, and closes it.
        outcome, self._outcome = self._outcome, None
        assert outcome is not None
        self.state = outcome.decision.state
        if outcome.date is not None and hdrs.DATE not in self._headers:
            self._headers[hdrs.DATE] = format_http_date(outcome.date)
        if outcome.decision.state is not FileResponseState.SEND:
            return await self._answer_without_body(request, outcome)
        file = outcome.file  # None when the job read the body itself
        try:
            return await self._answer_with_body(request, outcome, file)
        finally:
            if file is None:
                pass
            elif self._use_executor:
                # Closed by a later executor job, so that neither this connection
                # nor the event loop waits on it.
                closer(loop).add(loop, file)
            else:
                file.close()

    def __del__(self) -> None:
        # Never prepared (a middleware sent another response, or the request was
        # cancelled while its job ran): close what the job opened for it.
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and outcome.file is not None:
            outcome.file.close()

    def _evaluate(
        self,
        method: str,
        conditions: Conditions,
        accept_encoding: str | None,
        known: os.stat_result | None = None,
        closing: list[io.FileIO] | None = None,
        *,
        started: Moment | None = None,
    ) -> _Outcome:
        """Stat, decide and, only to send, open: the executor job of one request.

        The outcome is also kept on the response, for prepare() to take, or for
        __del__ to close its file should the response never be prepared.

        ``known`` is a stat of the file that the caller already made and vouches for
        (the static route, having kept the path inside its root), so that no file is
        stat'ed twice.  The file then opened must be that same file, reached without a
        symlink, or the answer is 404: nothing swapped in meanwhile is sent.
        ``closing`` are files sent earlier, for this job to close first.
        ``started`` is the moment the caller read before its own stat of the file.
        """
        if closing:
            close_files(closing)
        if started is None:
            started = moment()
        outcome = self._stat_decide_open(
            method, conditions, accept_encoding, known, started
        )
        self._outcome = outcome
        return outcome

    def _stat_decide_open(
        self,
        method: str,
        conditions: Conditions,
        accept_encoding: str | None,
        known: os.stat_result | None,
        started: Moment,
    ) -> _Outcome:
        path = self._fspath
        if "\x00" in path:
            return _NOT_FOUND
        try:
            original = known
            if original is None:
                # A variant may stand for a file that is not there itself, as upstream.
                with contextlib.suppress(FileNotFoundError):
                    original = os.stat(path)
            variant = select_variant(
                path, original, accept_encoding, self._precompressed
            )
            if variant.stat is not None:
                st = variant.stat
            elif original is None:
                # A client that accepts a variant gets it here: say so (§12.5.5).
                return _NOT_FOUND_VARYING if variant.has_variants else _NOT_FOUND
            else:
                st = original
            if not S_ISREG(st.st_mode):
                return _FORBIDDEN
            outcome = self._decide(method, conditions, st, variant, started)
            if outcome.decision.state is not FileResponseState.SEND:
                return outcome
            return self._open(
                method, conditions, variant, outcome, known is not None, started
            )
        except PermissionError:
            return _FORBIDDEN
        except OSError:
            # Missing, a symlink loop, a name too long or a path through a non-directory.
            return _NOT_FOUND

    def _open(
        self,
        method: str,
        conditions: Conditions,
        variant: Variant,
        outcome: _Outcome,
        pinned: bool,
        started: Moment,
    ) -> _Outcome:
        flags = _OPEN_FLAGS_CHECKED
        if pinned or variant.encoding is not None:
            # Found by lstat: a symlink put in its place is not followed.
            flags |= getattr(os, "O_NOFOLLOW", 0)
        # Not a with block: the open file is handed on to be sent and closed later.
        file = open(os.open(variant.path, flags), "rb", buffering=0)  # noqa: SIM115
        try:
            # Headers and body must describe the same file: the one now open.
            opened = os.fstat(file.fileno())
            if not S_ISREG(opened.st_mode):
                file.close()
                return _FORBIDDEN
            assert outcome.stat is not None
            if file_identity(opened) != file_identity(outcome.stat):
                if pinned:
                    file.close()
                    return _NOT_FOUND
                outcome = self._decide(method, conditions, opened, variant, started)
                if outcome.decision.state is not FileResponseState.SEND:
                    file.close()
                    return outcome
            data = _read_ahead(file, method, outcome)
        except BaseException:
            file.close()
            raise
        if data is None:
            return outcome._replace(file=file)
        file.close()
        return outcome._replace(data=data)

    def _decide(
        self,
        method: str,
        conditions: Conditions,
        st: os.stat_result,
        variant: Variant,
        started: Moment,
    ) -> _Outcome:
        validators = make_validators(
            st.st_mtime_ns,
            max(st.st_ctime_ns, self._above_changed_ns),
            st.st_size,
            started.fs_ns,
            etag=self._send_etag,
            last_modified=self._send_last_modified,
            # A variant may carry the same Last-Modified as the file, or may have
            # carried it before it was removed: a date does not tell which of them a
            # client holds (RFC 9110 §8.8.2.2), an entity-tag does.
            date_is_strong=not self._precompressed,
        )
        if validators.etag is not None and (
            self._etag_function is not None or variant.encoding is not None
        ):
            tag: str | None = validators.etag
            if self._etag_function is not None:
                # Only for a file old enough for validators, so that a version's tag
                # can be cached by its identity: a later version cannot share its
                # timestamps.
                tag = checked_tag(self._etag_function, variant.path, st)
            validators = validators._replace(etag=variant_tag(tag, variant.encoding))
        decision = decide(method, conditions, validators, st.st_size)
        if len(decision.ranges) > 1 and variant.encoding is not None:
            # A Content-Encoding on a multipart/byteranges answer would say that the
            # multipart body itself is compressed, and clients fail to decode it.
            # RFC 9110 §14.2 lets a server ignore Range: the whole variant is sent.
            decision = Decision(FileResponseState.SEND)
        return _Outcome(
            decision,
            validators,
            st.st_size,
            None,
            variant.encoding,
            variant.has_variants,
            st,
            date=started.date,
        )

    def _set_caching_headers(self, outcome: _Outcome) -> None:
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

    def _set_vary(self, outcome: _Outcome) -> None:
        """Say that the answer depends on Accept-Encoding where a variant exists."""
        if outcome.has_variants:
            headers = self._headers
            vary = headers.get(hdrs.VARY)
            if vary is None:
                headers[hdrs.VARY] = hdrs.ACCEPT_ENCODING
            elif hdrs.ACCEPT_ENCODING.lower() not in vary.lower() and vary != "*":
                headers[hdrs.VARY] = f"{vary}, {hdrs.ACCEPT_ENCODING}"

    async def _answer_without_body(
        self, request: BaseRequest, outcome: _Outcome
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
        self, request: BaseRequest, outcome: _Outcome, file: io.FileIO | None
    ) -> AbstractStreamWriter | None:
        headers = self._headers
        size = outcome.size
        if hdrs.CONTENT_TYPE not in headers:
            content_type = _CONTENT_TYPES.guess_type(self._fspath)[0]
            headers[hdrs.CONTENT_TYPE] = content_type or _FALLBACK_CONTENT_TYPE
        if outcome.encoding is not None:
            headers[hdrs.CONTENT_ENCODING] = outcome.encoding
            # Already compressed: never compress it again.
            self._compression = False
        self._set_caching_headers(outcome)
        headers[hdrs.ACCEPT_RANGES] = "bytes"
        ranges = outcome.decision.ranges
        if len(ranges) > 1:
            assert file is not None
            assert outcome.stat is not None
            parts = _Parts.of(ranges, size, headers[hdrs.CONTENT_TYPE], outcome.stat)
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
        return await self._send_body(request, file, start, count, outcome.stat)

    async def _send_body(
        self,
        request: BaseRequest,
        file: io.FileIO,
        offset: int,
        count: int,
        decided: os.stat_result,
    ) -> AbstractStreamWriter:
        writer = await web.StreamResponse.prepare(self, request)
        assert writer is not None
        use_sendfile = not (NOSENDFILE or self.compression)
        # The last byte waits until the file is known to be the one the headers
        # describe: a file rewritten in place meanwhile is cut short, never passed off.
        last = offset + count - 1
        for start, length in ((offset, count - 1), (last, 1)):
            if length == 0:
                continue  # a one-byte body is its last byte
            if start == last and not _unchanged(file, decided):
                self._cut_short(request)
                return writer
            if use_sendfile:
                try:
                    sent = await self._sendfile_range(request, file, start, length)
                except NotImplementedError:
                    use_sendfile = False  # no sendfile(2) here: read and write
            if not use_sendfile:
                sent = await self._copy(writer, file, start, length)
            if sent < length:
                self._cut_short(request)
                return writer
        if use_sendfile:
            await self.write_eof()
        else:
            await writer.drain()
        return writer

    async def _sendfile_range(
        self, request: BaseRequest, file: io.FileIO, offset: int, count: int
    ) -> int:
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("Connection lost")
        if count == 0:
            return 0
        return await asyncio.get_running_loop().sendfile(transport, file, offset, count)

    def _cut_short(self, request: BaseRequest) -> None:
        """End a response whose file shrank while it was sent.

        Its body can no longer reach the Content-Length already sent, so the connection
        is closed: the client sees an incomplete response, never a short body passed
        off as a whole one (nor the next response read as the rest of it).
        """
        self.force_close()
        if request.transport is not None:
            request.transport.close()

    async def _send_parts(
        self, request: BaseRequest, file: io.FileIO, parts: _Parts
    ) -> AbstractStreamWriter:
        """Send a multipart/byteranges body (RFC 9110 §14.6), part by part."""
        self.set_status(206)
        self._headers[hdrs.CONTENT_TYPE] = parts.content_type
        self.content_length = parts.length
        writer = await web.StreamResponse.prepare(self, request)
        assert writer is not None
        if request.method != hdrs.METH_HEAD:
            for head, (start, stop) in zip(parts.heads, parts.ranges, strict=True):
                await writer.write(head)
                if await self._copy(writer, file, start, stop - start - 1) < (
                    stop - start - 1
                ):
                    self._cut_short(request)
                    return writer
                # As for a single body, the last byte waits for the file to be checked.
                if not _unchanged(file, parts.decided) or (
                    await self._copy(writer, file, stop - 1, 1) < 1
                ):
                    self._cut_short(request)
                    return writer
            await writer.write(parts.tail)
            await writer.drain()
        return writer

    async def _copy(
        self, writer: AbstractStreamWriter, file: io.FileIO, offset: int, count: int
    ) -> int:
        """Write part of the file through the writer, a chunk at a time.

        Return how many bytes were written: fewer than ``count`` if the file shrank.
        """
        loop = asyncio.get_running_loop()
        fd = file.fileno()
        start = offset
        while count > 0:
            size = min(self._chunk_size, count)
            if self._use_executor:
                chunk = await loop.run_in_executor(None, os.pread, fd, size, offset)
            else:
                chunk = os.pread(fd, size, offset)
            if not chunk:
                break
            await writer.write(chunk)
            offset += len(chunk)
            count -= len(chunk)
        return offset - start


def _read_ahead(file: io.FileIO, method: str, outcome: _Outcome) -> bytes | None:
    """Read a small body in the job, or None to stream it from the open file.

    HEAD needs no bytes.  What is read is used only if the file is unchanged
    afterwards, so the bytes are those of the version the headers describe.
    """
    if method == hdrs.METH_HEAD:
        return b""
    ranges = outcome.decision.ranges
    if len(ranges) > 1:
        return None  # multipart: its framing is settled on the loop; stream it
    start, stop = ranges[0] if ranges else (0, outcome.size)
    if stop - start > _READ_AHEAD:
        return None
    data = os.pread(file.fileno(), stop - start, start)
    assert outcome.stat is not None
    if len(data) < stop - start or not _unchanged(file, outcome.stat):
        return None  # changed meanwhile: the streaming path cuts the response short
    return data


def _unchanged(file: io.FileIO, decided: os.stat_result) -> bool:
    """Tell whether an open file's bytes are still those the answer was decided on.

    Any write moves mtime; a write that then puts the old mtime back (cp -p) moves
    ctime.  So does a rename or an unlink of the file, which changes no byte: that one
    shows in the link count, and is let through.  An fstat of an open descriptor reads
    no disk, so the event loop may make it.
    """
    now = os.fstat(file.fileno())
    if (now.st_size, now.st_mtime_ns) != (decided.st_size, decided.st_mtime_ns):
        return False
    return now.st_ctime_ns == decided.st_ctime_ns or now.st_nlink != decided.st_nlink


class _Parts(NamedTuple):
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
    ) -> _Parts:
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
