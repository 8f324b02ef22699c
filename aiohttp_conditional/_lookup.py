"""The file work of one request: find, choose a variant, decide, open only to send.

`look_up` takes plain values (the path, the request's method, conditions and
Accept-Encoding, the options) and a `FileSystem` to make its calls through, and returns
an `Outcome` for the response to answer with.  It knows nothing of aiohttp.  Run with
the cached-only file system it either finishes without waiting for any I/O or raises
`WouldBlock` having kept nothing open, so that the same work can be run again in an
executor job.
"""

from __future__ import annotations

import contextlib
import io
import os
from stat import S_ISREG
from typing import Final, NamedTuple

from ._clock import Moment
from ._devices import keeps_change_time
from ._digest import repr_digest
from ._encoding import DEFAULT_ORDER, SUFFIXES, Variant, select_variant, variant_tag
from ._etags import (
    ETagFunction,
    checked_tag,
    content_hash,
    file_identity,
    hash_open_file,
    known_hash,
)
from ._inject import MAX_PAGE, Injection, inject, injected_tag
from ._kernel import FileSystem, WouldBlock
from ._platform import NOFOLLOW, NONBLOCK
from ._preconditions import (
    Conditions,
    Decision,
    FileResponseState,
    Validators,
    decide,
    make_validators,
    stable_from_ns,
)

__all__ = ("FORBIDDEN", "NOT_FOUND", "Asked", "Options", "Outcome", "look_up")

# A body up to this size is read by the lookup and sent in one write with the
# headers, instead of through sendfile(2), whose setup costs more than such a copy.
READ_AHEAD: Final = 64 * 1024
# How often a page that changes while it is read is read again.
_PAGE_READS: Final = 3


class Options(NamedTuple):
    """How a file is to be answered for: what the response was constructed with."""

    etag: bool = True
    etag_function: ETagFunction | None = None  # None: the tag from the stat
    last_modified: bool = True
    precompressed: tuple[str, ...] = DEFAULT_ORDER
    digest: bool = False  # send Repr-Digest (RFC 9530)
    # Send a page with this added (see _inject): read whole, Range ignored.
    inject: Injection | None = None

    @classmethod
    def of(
        cls,
        etag: object = True,
        last_modified: bool = True,
        precompressed: tuple[str, ...] = DEFAULT_ORDER,
        digest: bool = False,
    ) -> Options:
        """Return the options from a response's arguments; ValueError for bad ones."""
        if (
            etag is True
            and last_modified is True
            and precompressed is DEFAULT_ORDER
            and digest is False
        ):
            return _DEFAULTS
        if not isinstance(digest, bool):
            raise ValueError(f"digest must be True or False: {digest!r}")
        function: ETagFunction | None = None
        if etag == "content":
            function = content_hash
        elif callable(etag):
            function = etag
        elif not isinstance(etag, bool):
            raise ValueError(
                f"etag must be True, False, 'content' or a function: {etag!r}"
            )
        unknown = [coding for coding in precompressed if coding not in SUFFIXES]
        if unknown:
            raise ValueError(f"no precompressed variants of {', '.join(unknown)}")
        return cls(
            etag is not False,
            function,
            last_modified,
            tuple(precompressed),
            # With etag="content" the hash is at hand: its digest costs nothing more.
            digest or function is content_hash,
        )


_DEFAULTS: Final = Options()


class Asked(NamedTuple):
    """What a request asks of a file, read from it on the event loop."""

    method: str
    conditions: Conditions
    accept_encoding: str | None
    # Read before the file's stat: see _clock.moment.
    started: Moment
    # Want-Repr-Digest calls SHA-256 "not acceptable" (RFC 9530 §4).
    refuses_digest: bool = False


class Outcome(NamedTuple):
    """What the lookup found out, for the response to answer with."""

    decision: Decision
    validators: Validators | None = None
    size: int = 0
    file: io.FileIO | None = None  # open only when the decision is SEND
    encoding: str | None = None
    has_variants: bool = False
    stat: os.stat_result | None = None  # what the decision was made from
    # The bytes to send, when the lookup read them (a small body, or none for HEAD);
    # then the file is closed already.
    data: bytes | None = None
    date: int | None = None  # the answer's Date: the second it was decided in
    digest: str | None = None  # the Repr-Digest of what is sent, the whole of it
    # A page sent with an injection: not the file's bytes, so no range of them.
    injected: bool = False

    def close(self) -> None:
        """Close the file of an outcome that will not be sent after all."""
        if self.file is not None:
            self.file.close()


FORBIDDEN: Final = Outcome(Decision(FileResponseState.FORBIDDEN))
NOT_FOUND: Final = Outcome(Decision(FileResponseState.NOT_FOUND))
_NOT_FOUND_VARYING: Final = NOT_FOUND._replace(has_variants=True)


def look_up(
    fs: FileSystem,
    path: str,
    options: Options,
    asked: Asked,
    known: os.stat_result | None = None,
    above_changed_ns: int = 0,
) -> Outcome:
    """Stat, decide and, only to send, open: the file work of one request.

    ``known`` is a stat of the file that the caller already made and vouches for
    (the static route, having kept the path inside its root), so that no file is
    stat'ed twice.  The file then opened must be that same file, reached without a
    symlink, or the answer is 404: nothing swapped in meanwhile is sent.
    ``above_changed_ns`` is the latest ctime of the directories and the symlink the
    caller passed through to the file: a rename of one of them is a change of the
    file too (where ctime is a change time; elsewhere the file's number tells).
    """
    if "\x00" in path:
        return NOT_FOUND
    try:
        original = known
        if original is None:
            # A variant may stand for a file that is not there itself, as upstream.
            with contextlib.suppress(FileNotFoundError):
                original = fs.stat(path)
        variant = select_variant(
            path, original, asked.accept_encoding, options.precompressed, fs.probe
        )
        if variant.stat is not None:
            st = variant.stat
        elif original is None:
            # A client that accepts a variant gets it here: say so (§12.5.5).
            return _NOT_FOUND_VARYING if variant.has_variants else NOT_FOUND
        else:
            st = original
        if not S_ISREG(st.st_mode):
            return FORBIDDEN
        outcome = _decide(fs, options, asked, st, variant, above_changed_ns)
        if outcome.decision.state is not FileResponseState.SEND:
            return outcome
        return _open(fs, options, asked, variant, outcome, known, above_changed_ns)
    except PermissionError:
        return FORBIDDEN
    except OSError:
        # Missing, a symlink loop, a name too long or a path through a non-directory.
        return NOT_FOUND


def _open(
    fs: FileSystem,
    options: Options,
    asked: Asked,
    variant: Variant,
    outcome: Outcome,
    known: os.stat_result | None,
    above_changed_ns: int,
) -> Outcome:
    # O_NONBLOCK: a file swapped for a FIFO between stat and open must not hang the
    # worker; it changes nothing for the regular files that are read.
    flags = NONBLOCK
    if known is not None or variant.encoding is not None:
        # Found by lstat: a symlink put in its place is not followed.
        flags |= NOFOLLOW
    # Not a with block: the open file is handed on to be sent and closed later.
    file = open(fs.open(variant.path, flags), "rb", buffering=0)  # noqa: SIM115
    try:
        # Headers and body must describe the same file: the one now open.
        opened = os.fstat(file.fileno())
        if not S_ISREG(opened.st_mode):
            file.close()
            return FORBIDDEN
        assert outcome.stat is not None
        if file_identity(opened) != file_identity(outcome.stat):
            if known is not None:
                file.close()
                return NOT_FOUND
            outcome = _decide(fs, options, asked, opened, variant, above_changed_ns)
            if outcome.decision.state is not FileResponseState.SEND:
                file.close()
                return outcome
        if options.digest and not asked.refuses_digest:
            assert outcome.stat is not None
            digest = _digest(fs, variant.path, file, outcome.stat, asked.started)
            outcome = outcome._replace(digest=digest)
        if outcome.injected:
            outcome = _read_page(
                fs, file, options, asked, variant, outcome, above_changed_ns
            )
            if outcome.decision.state is not FileResponseState.SEND:
                file.close()
                return outcome
        if outcome.injected:
            data = b"" if asked.method == "HEAD" else outcome.data
        else:
            data = _read_ahead(fs, file, asked.method, outcome)
        if (
            data is not None
            and not fs.may_block
            and os.fstat(file.fileno()).st_nlink == 0
        ):
            # Unlinked meanwhile: this close may be its last, which frees its blocks.
            raise WouldBlock(variant.path)
    except WouldBlock as error:
        error.files.append(file)  # for the job to close, as the note says
        raise
    except BaseException:
        file.close()
        raise
    if data is None:
        return outcome._replace(file=file)
    file.close()
    return outcome._replace(data=data)


def _decide(
    fs: FileSystem,
    options: Options,
    asked: Asked,
    st: os.stat_result,
    variant: Variant,
    above_changed_ns: int,
) -> Outcome:
    if keeps_change_time(st.st_dev):
        changed_ns, file_id = max(st.st_ctime_ns, above_changed_ns), None
    else:
        # No change time: ctime is the creation time (Windows), which neither an
        # in-place write nor a rename moves, or the mtime (FAT, exFAT).  A version is
        # its modification time, size and file number; a rename above is not seen.
        changed_ns, file_id = st.st_mtime_ns, st.st_ino
    injection = _injection(options, st)
    validators = make_validators(
        st.st_mtime_ns,
        changed_ns,
        st.st_size,
        asked.started.fs_ns,
        etag=options.etag,
        last_modified=options.last_modified,
        # A variant may carry the same Last-Modified as the file, or may have carried
        # it before it was removed: a date does not tell which of them a client holds
        # (RFC 9110 §8.8.2.2), an entity-tag does.
        date_is_strong=not options.precompressed,
        file_id=file_id,
    )
    function = options.etag_function
    if validators.etag is not None and (
        function is not None or variant.encoding is not None
    ):
        tag: str | None = validators.etag
        if function is not None:
            # Only for a file old enough for validators, so that a version's tag can
            # be cached by its identity: a later version cannot share its timestamps.
            tag = _tag(fs, function, variant.path, st)
        validators = validators._replace(etag=variant_tag(tag, variant.encoding))
    conditions = asked.conditions
    if injection is not None:
        validators = validators._replace(
            etag=injected_tag(validators.etag, injection.mark)
        )
        # RFC 9110 §14.2: a server may ignore Range; the page is made whole, each time.
        conditions = conditions._replace(range=None, if_range=None)
    decision = decide(asked.method, conditions, validators, st.st_size)
    if len(decision.ranges) > 1 and variant.encoding is not None:
        # A Content-Encoding on a multipart/byteranges answer would say that the
        # multipart body itself is compressed, and clients fail to decode it.
        # RFC 9110 §14.2 lets a server ignore Range: the whole variant is sent.
        decision = Decision(FileResponseState.SEND)
    return Outcome(
        decision,
        validators,
        st.st_size,
        None,
        variant.encoding,
        variant.has_variants,
        st,
        date=asked.started.date,
        injected=injection is not None,
    )


def _injection(options: Options, st: os.stat_result) -> Injection | None:
    """Return what to add to the file ``st`` describes, or None to send it as it is."""
    injection = options.inject
    if injection is None or st.st_size > MAX_PAGE:
        return None
    return injection


def _digest(
    fs: FileSystem, path: str, file: io.FileIO, st: os.stat_result, started: Moment
) -> str | None:
    """Return the Repr-Digest of the open file ``st`` describes; None for none yet.

    The hash is that of ``content_hash``, kept by the file's identity, and made from
    the file that is to be sent, so its bytes are those the identity check let
    through.  A file not yet stable gets none: a later version may still share its
    identity.
    """
    if started.fs_ns < stable_from_ns(st.st_mtime_ns, st.st_ctime_ns):
        return None
    found = known_hash(st)
    if found is None:
        if not fs.may_block:
            raise WouldBlock(path)  # hashing reads the whole file
        found = hash_open_file(file, st)
        if found is None:
            return None
    return repr_digest(found)


def _tag(
    fs: FileSystem, function: ETagFunction, path: str, st: os.stat_result
) -> str | None:
    """Return the entity-tag a function gives a file, quoted."""
    if fs.may_block:
        return checked_tag(function, path, st)
    # Hashing reads the whole file, and a caller's function may do anything: only a
    # hash already known is used here, from the caches.
    if function is content_hash:
        found = known_hash(st)
        if found is not None:
            return f'"{found}"'
    raise WouldBlock(path)


def _read_ahead(
    fs: FileSystem, file: io.FileIO, method: str, outcome: Outcome
) -> bytes | None:
    """Read a small body now, or return None to stream it from the open file.

    HEAD needs no bytes.  What is read is used only if the file is unchanged
    afterwards, so the bytes are those of the version the headers describe.
    """
    if method == "HEAD":
        return b""
    ranges = outcome.decision.ranges
    if len(ranges) > 1:
        return None  # multipart: its framing is settled on the loop; stream it
    start, stop = ranges[0] if ranges else (0, outcome.size)
    if stop - start > READ_AHEAD:
        return None
    data = fs.read(file.fileno(), stop - start, start)
    if data is None:
        return None  # not to be read here: stream it
    assert outcome.stat is not None
    if len(data) < stop - start or not unchanged(file, outcome.stat):
        return None  # changed meanwhile: the streaming path cuts the response short
    return data


def _read_page(
    fs: FileSystem,
    file: io.FileIO,
    options: Options,
    asked: Asked,
    variant: Variant,
    outcome: Outcome,
    above_changed_ns: int,
) -> Outcome:
    """Read a page whole and add the injection to it: the outcome to send it with.

    A page that changes while it is read is decided again on what it is now, and
    read again.  One that goes on changing is sent as last read, without validators
    (its bytes may be of no one version), and only if the request's conditions hold
    without them: an If-Match then fails.  Its next change reloads it anyway.
    """
    fd = file.fileno()
    if not fs.may_block and outcome.size > READ_AHEAD:
        raise WouldBlock(variant.path)  # a large page is read in the job
    injection = options.inject
    assert injection is not None
    data = b""
    for _ in range(_PAGE_READS):
        assert outcome.stat is not None
        read = fs.read(fd, outcome.size, 0) if outcome.size else b""
        if read is None:
            # A file system that cannot tell whether the read would wait: in the job.
            raise WouldBlock(variant.path)
        data = read
        if len(data) == outcome.size and unchanged(file, outcome.stat):
            break
        if not fs.may_block:
            raise WouldBlock(variant.path)  # changed meanwhile: the job reads again
        outcome = _decide(fs, options, asked, os.fstat(fd), variant, above_changed_ns)
        if outcome.decision.state is not FileResponseState.SEND or not outcome.injected:
            return outcome
    else:
        assert outcome.validators is not None
        validators = outcome.validators._replace(etag=None, last_modified=None)
        conditions = asked.conditions._replace(range=None, if_range=None)
        decision = decide(asked.method, conditions, validators, len(data))
        outcome = outcome._replace(validators=validators, decision=decision)
        if decision.state is not FileResponseState.SEND:
            return outcome
    page = inject(data, injection.snippet)
    if page is None:
        page = data
    return outcome._replace(data=page, size=len(page))


def unchanged(file: io.FileIO, decided: os.stat_result) -> bool:
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
