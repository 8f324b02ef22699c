"""add_static and static: aiohttp's static route, each request answered by one lookup."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import re
from collections.abc import Callable, Iterable, Mapping
from stat import S_ISDIR, S_ISREG
from typing import Any, Final, NamedTuple

from aiohttp import hdrs, web
from aiohttp.typedefs import PathLike
from multidict import CIMultiDict
from yarl import URL

from ._clock import moment
from ._devices import folds_case
from ._encoding import SUFFIXES
from ._etags import content_hash, known_hash
from ._fields import Fields, HeadersFunction, add_vary, check_fields
from ._inject import inject
from ._jobs import run
from ._kernel import DISK, FileSystem, WouldBlock
from ._listing import listing, quote_path
from ._live import PLACE, Reloader
from ._lookup import Asked, Options, Outcome, look_up
from ._names import DirectoryNames, refused_on_windows
from ._platform import WINDOWS, is_link
from ._preconditions import Conditions, FileResponseState
from ._response import (
    DEFAULT_CHUNK_SIZE,
    ConditionalFileResponse,
    accept_encoding_of,
    conditions_of,
    content_type_of,
    decided_response,
    refuses_digest_of,
)

__all__ = ("ConditionalStaticResource", "add_static", "static")

IMMUTABLE: Final = "public, max-age=31536000, immutable"
DOTFILES: Final = ("deny", "allow")
_NO_CONDITIONS: Final = Conditions()
# RFC 8615: the one dot-directory a site means to publish, at the top of the route.
_WELL_KNOWN: Final = ".well-known"
# A live route's 404 for a page navigation: a page that reloads once the path names
# something (see _live).
_NOT_FOUND_PAGE: Final = (
    "<!doctype html><title>404: Not Found</title><h1>404: Not Found</h1>"
)
# The answers a route's header fields go on (RFC 9111 §4.3.4: a 304 updates what a
# cache stored from the 200).
_WITH_FIELDS: Final = (FileResponseState.SEND, FileResponseState.NOT_MODIFIED)
_RESPONSE_OPTIONS: Final = frozenset(
    {
        "etag",
        "last_modified",
        "cache_control",
        "use_executor",
        "precompressed",
        "digest",
    }
)


# What upstream's StaticResource calls following symlinks out of the root: the name
# changes in aiohttp's next release.
_SANDBOX: Final = (
    "break_symlink_sandbox"
    if "break_symlink_sandbox" in inspect.signature(web.StaticResource).parameters
    else "follow_symlinks"
)


class _Target(NamedTuple):
    """A path inside the root and the stat made while finding it.

    ``above_changed_ns`` is the latest ctime of the root, the directories and the
    symlink the walk passed through to it.  Rolling a release back by renaming a
    directory (``mv app app-v2 && mv app-v1 app``) or by switching a symlink back
    changes no file, but it moves the ctime of what was renamed or made: so the
    files now reached through it get validators no client holds, though they are old.
    Where there is no change time (Windows, FAT), it is not used: those files are
    told apart by their own numbers instead (see `_lookup`).
    """

    path: str
    stat: os.stat_result
    above_changed_ns: int = 0


class _Job(NamedTuple):
    """What a request asks of the route, read from it on the event loop."""

    filename: str
    # Read before the walk: the stat it makes of the file is the file's only one.
    asked: Asked
    version: str | None
    ends_with_slash: bool
    raw_query_string: str
    # A page navigation (see _navigates), which a missing path answers with the
    # fallback page, or None where the route has none.
    navigation: bool | None = None
    immutable: bool = False  # the path is one the route calls immutable


class ConditionalStaticResource(web.StaticResource):
    """A ``web.StaticResource`` that answers each request with one lookup.

    The lookup, on the event loop or in one executor job as ``use_executor`` says,
    resolves the path and keeps it inside the root, answers a directory (index
    file, listing or 403), stats the file, evaluates the preconditions and opens the
    file only to send it, with :class:`ConditionalFileResponse`.  Errors are raised
    from the handler as upstream raises them, so middlewares still see
    ``HTTPNotFound`` and ``HTTPForbidden``.
    """

    def __init__(
        self,
        prefix: str,
        directory: PathLike,
        *,
        name: str | None = None,
        expect_handler: Any = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        show_index: bool = False,
        follow_symlinks: bool = False,
        append_version: bool = False,
        break_symlink_sandbox: bool | None = None,
        text_charset: str | None = None,
        index: str | None = None,
        immutable_versions: bool = False,
        dotfiles: str = "deny",
        fallback: str | None = None,
        not_found: str | None = None,
        extensions: tuple[str, ...] = (),
        immutable: str | re.Pattern[str] | Callable[[str], bool] | None = None,
        headers: Mapping[str, str] | HeadersFunction | None = None,
        live: bool = False,
        **response_options: Any,
    ) -> None:
        """Serve the files under ``directory`` at ``prefix``; see :func:`add_static`.

        A bad option raises ``ValueError`` or ``TypeError`` here, when the route is
        made, not as a 500 on every request.
        """
        # aiohttp's next release renames follow_symlinks, to say what it does.
        if break_symlink_sandbox is not None:
            if follow_symlinks and not break_symlink_sandbox:
                raise ValueError(
                    "follow_symlinks=True and break_symlink_sandbox=False disagree"
                )
            follow_symlinks = follow_symlinks or bool(break_symlink_sandbox)
        unknown = response_options.keys() - _RESPONSE_OPTIONS
        if unknown:
            raise TypeError(
                f"unexpected keyword arguments: {', '.join(sorted(unknown))}"
            )
        if index is not None and (not index or "/" in index or index in (".", "..")):
            raise ValueError(f"index must be a file name, not {index!r}")
        for option, value in (("fallback", fallback), ("not_found", not_found)):
            if value is not None and not _is_relative_path(value):
                raise ValueError(f"{option} must be a path inside the root: {value!r}")
        if isinstance(extensions, str) or not all(
            isinstance(extension, str)
            and extension
            and not set(extension) & set("/\\.\x00")
            for extension in extensions
        ):
            raise ValueError(
                f"extensions must be names such as ('html',): {extensions!r}"
            )
        immutable_test: Callable[[str], object] | None = None
        if isinstance(immutable, str):
            try:
                immutable = re.compile(immutable)
            except re.error as error:
                raise ValueError(
                    f"immutable is not a regular expression: {error}"
                ) from None
        if isinstance(immutable, re.Pattern):
            immutable_test = immutable.search
        elif callable(immutable):
            immutable_test = immutable
        elif immutable is not None:
            raise TypeError(f"immutable must be a pattern or a function: {immutable!r}")
        fields: Fields = ()
        headers_function: HeadersFunction | None = None
        if isinstance(headers, Mapping):
            fields = check_fields(headers, "headers")
        elif callable(headers):
            headers_function = headers
        elif headers is not None:
            raise TypeError(f"headers must be a mapping or a function: {headers!r}")
        if dotfiles not in DOTFILES:
            raise ValueError(f"dotfiles must be one of {DOTFILES}, not {dotfiles!r}")
        for option, value in (("fallback", fallback), ("not_found", not_found)):
            if value is not None and dotfiles == "deny" and _names_a_dotfile(value):
                raise ValueError(
                    f"{option} names a dotfile, which dotfiles='deny' hides: {value!r}"
                )
        # A bad value fails here, once, rather than as a 500 on every request.
        checked = ConditionalFileResponse(
            directory,
            chunk_size=chunk_size,
            text_charset=text_charset,
            **response_options,
        )
        super().__init__(
            prefix,
            directory,
            name=name,
            expect_handler=expect_handler,
            chunk_size=chunk_size,
            show_index=show_index,
            append_version=append_version,
            **{_SANDBOX: follow_symlinks},
        )
        self._root = os.fspath(self._directory)
        # With the platform's separator, as realpath gives paths.
        self._root_prefix = os.path.join(self._root, "")
        self._names = DirectoryNames()
        self._index = index
        self._leaves_root = follow_symlinks
        self._text_charset = text_charset
        self._immutable_versions = immutable_versions
        self._hide_dotfiles = dotfiles == "deny"
        self._fallback = fallback
        self._not_found = not_found
        self._extensions = tuple(extensions)
        self._immutable = immutable_test
        self._fields = fields
        self._headers_function = headers_function
        self._options = Options.of(
            **{
                name: value
                for name, value in response_options.items()
                if name in ("etag", "last_modified", "precompressed", "digest")
            }
        )
        self._cache_control: str | None = response_options.get("cache_control")
        self._use_executor = checked.use_executor
        self._live: Reloader | None = None
        self._page_options = self._options
        if live:
            self._live = Reloader(self._root, self._prefix, self._hides)
            self._set_page_options()

    def add_prefix(self, prefix: str) -> None:
        """Move the route below ``prefix``, as a sub-application's prefix does."""
        super().add_prefix(prefix)
        if self._live is not None:
            self._live.move(self._prefix)
            self._set_page_options()

    def _set_page_options(self) -> None:
        assert self._live is not None
        # A page is made anew from its file: no coding of the file's applies, and
        # only an entity-tag names it (a date cannot tell it from the file).
        self._page_options = self._options._replace(
            inject=self._live.injection,
            last_modified=False,
            precompressed=(),
            digest=False,
        )

    @property
    def live(self) -> Reloader | None:
        """The route's live reload, or None where ``live`` is off."""
        return self._live

    def url_for(  # type: ignore[override]
        self, *, filename: PathLike, append_version: bool | None = None
    ) -> URL:
        """Return the URL of a file, with ``?v=<hash>`` when versions are asked for.

        The hash is computed once per file identity (device, inode, size, mtime, ctime)
        instead of on every call.
        """
        if append_version is None:
            append_version = self._append_version
        url = super().url_for(filename=filename, append_version=False)
        if not append_version:
            return url
        try:
            target = self._resolve(os.fspath(filename).lstrip("/"))
        except (OSError, ValueError):
            return url
        if target is None or not S_ISREG(target.stat.st_mode):
            return url
        digest = self._version(target)
        return url if digest is None else url.with_query({self.VERSION_KEY: digest})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        headers = request.headers
        version = None
        if self._immutable_versions:
            version = request.query.get(self.VERSION_KEY)
        asked = Asked(
            request.method,
            conditions_of(headers),
            accept_encoding_of(headers),
            moment(),
            self._options.digest and refuses_digest_of(headers),
        )
        filename = request.match_info["filename"]
        if self._live is not None and filename.startswith(f"{PLACE}/"):
            return await self._live.handle(request, filename[len(PLACE) + 1 :])
        navigation = None
        if self._fallback is not None:
            accept = headers.getall(hdrs.ACCEPT, None)
            navigation = _navigates(
                request.method, filename, None if accept is None else ", ".join(accept)
            )
        job = _Job(
            filename,
            asked,
            version,
            request.path.endswith("/"),
            request.rel_url.raw_query_string,
            navigation,
            # The caller's function, on the event loop: given the path, not the file.
            self._immutable is not None and bool(self._immutable(filename)),
        )
        answer = await run(self._use_executor, functools.partial(self._answer, job))
        if isinstance(answer, web.HTTPException):
            if (
                self._live is not None
                and answer.status == 404
                and _accepts_html(request.method, headers.getall(hdrs.ACCEPT, ()))
            ):
                # A page reloaded while its file was away (a build that begins with
                # rm -rf) must come back by itself.
                vary = answer.headers.getall(hdrs.VARY, ())
                answer = web.HTTPNotFound(
                    headers=[(hdrs.VARY, value) for value in vary],
                    text=_NOT_FOUND_PAGE + self._live.injection.snippet.decode(),
                    content_type="text/html",
                )
            raise answer
        return answer

    def _answer(
        self, job: _Job, fs: FileSystem
    ) -> web.StreamResponse | web.HTTPException:
        """Resolve, decide and open only to send: the file work of one request.

        Where the path names nothing, a page navigation gets the fallback page and
        anything else the 404 page, each if the route has one.
        """
        answer = self._answer_path(job, fs)
        if (
            isinstance(answer, web.HTTPNotFound)
            and self._extensions
            and job.filename
            and not job.ends_with_slash
        ):
            # Clean URLs: /about is about.html when "about" names nothing.
            for extension in self._extensions:
                clean = job._replace(filename=f"{job.filename}.{extension}")
                found = self._answer_path(clean, fs)
                if not isinstance(found, web.HTTPNotFound):
                    return found
        if not isinstance(answer, web.HTTPNotFound):
            return answer
        # The answer for a missing path depends on Accept wherever it may be the
        # fallback page: a cache must not give the page to a script, nor the 404.
        vary: tuple[str, ...] = ()
        if job.navigation is not None:
            # With what the 404 itself varies on (Accept-Encoding, if a variant is).
            vary = (*answer.headers.getall(hdrs.VARY, ()), hdrs.ACCEPT)
        if self._fallback is not None and job.navigation:
            page = self._answer_page(job, fs, self._fallback, 200, vary)
            if page is not None:
                return page
        if self._not_found is not None:
            page = self._answer_page(job, fs, self._not_found, 404, vary)
            if page is not None:
                return page
        for name in vary:
            add_vary(answer.headers, name)
        return answer

    def _answer_page(
        self,
        job: _Job,
        fs: FileSystem,
        name: str,
        status: int,
        vary: tuple[str, ...],
    ) -> web.StreamResponse | None:
        """Answer with the fallback page (200) or the 404 page; None if it is missing.

        The fallback is the page itself, validators, preconditions and ranges and
        all.  The 404 page is a body only (RFC 9110 §13.2.1: preconditions apply to
        what would be a 2xx): no validators, no Range, no Cache-Control.
        """
        try:
            target = self._resolve(name, fs)
        except OSError:
            return None
        if target is None or not S_ISREG(target.stat.st_mode):
            return None
        options, asked = self._options_for(target.path), job.asked
        if status != 200:
            options = options._replace(
                etag=False, etag_function=None, last_modified=False
            )
            asked = asked._replace(conditions=_NO_CONDITIONS)
        outcome = look_up(
            fs, target.path, options, asked, target.stat, target.above_changed_ns
        )
        if outcome.decision.state in (
            FileResponseState.NOT_FOUND,
            FileResponseState.FORBIDDEN,
        ):
            return None
        fields = self._fields_for(target.path, outcome) if status == 200 else ()
        return self._response(
            target.path,
            outcome,
            self._cache_control if status == 200 else None,
            fields,
            status=status,
            vary=vary,
        )

    def _answer_path(
        self, job: _Job, fs: FileSystem
    ) -> web.StreamResponse | web.HTTPException:
        """Answer for the path the request names."""
        if self._hide_dotfiles and _names_a_dotfile(job.filename):
            return web.HTTPNotFound()
        try:
            target = self._resolve(job.filename, fs)
            if target is not None and S_ISDIR(target.stat.st_mode):
                return self._answer_directory(job, target, fs)
        except FileNotFoundError:
            return self._answer_variant_only(job, fs)
        except PermissionError:
            return web.HTTPForbidden()
        except (OSError, ValueError):
            return web.HTTPNotFound()
        if target is None:
            return web.HTTPNotFound()
        return self._answer_file(job, target, fs)

    def _answer_variant_only(
        self, job: _Job, fs: FileSystem
    ) -> web.StreamResponse | web.HTTPException:
        """Answer for a missing file that a precompressed variant may stand for.

        Upstream sends ``name.gz`` for a ``name`` that is not there, and so do we, but
        only ever the variant: it is found by lstat in a directory that the walk kept
        inside the root, and opened without following a symlink.
        """
        directory, _, name = job.filename.rpartition("/")
        if not name:
            return web.HTTPNotFound()
        try:
            parent = self._resolve(directory, fs)
        except OSError:
            return web.HTTPNotFound()
        if parent is None or not S_ISDIR(parent.stat.st_mode):
            return web.HTTPNotFound()
        above_changed_ns = max(parent.above_changed_ns, parent.stat.st_ctime_ns)
        target = _Target(f"{parent.path}/{name}", parent.stat, above_changed_ns)
        options = self._options
        if folds_case(parent.stat.st_dev):
            # Only the variants the directory spells so: APP.JS is not app.js.gz's.
            try:
                spelled = tuple(
                    coding
                    for coding in options.precompressed
                    if self._names.spells(
                        parent.path, parent.stat, name + SUFFIXES[coding], fs
                    )
                )
            except OSError:
                return web.HTTPNotFound()  # not to be listed, or gone meanwhile
            options = options._replace(precompressed=spelled)
        return self._answer_file(job, target, fs, variant_only=True, options=options)

    def _answer_directory(
        self, job: _Job, target: _Target, fs: FileSystem
    ) -> web.StreamResponse | web.HTTPException:
        if self._index is not None:
            index = self._find(f"{target.path}/{self._index}", fs)
            if index is not None and S_ISREG(index.stat.st_mode):
                if not job.ends_with_slash:
                    # Relative links in the page resolve against the directory.
                    directory = f"{job.filename}/" if job.filename else ""
                    # The prefix is encoded already; the name, decoded from the
                    # request (with the bytes that are not UTF-8 as surrogates), not.
                    location = URL.build(
                        path=f"{self._prefix}/{quote_path(directory)}",
                        query_string=job.raw_query_string,
                        encoded=True,
                    )
                    return web.HTTPMovedPermanently(location=location)
                # What leads to the directory, and the directory itself, count as
                # changes of its index too.
                above_changed_ns = max(
                    index.above_changed_ns,
                    target.above_changed_ns,
                    target.stat.st_ctime_ns,
                )
                return self._answer_file(
                    job, index._replace(above_changed_ns=above_changed_ns), fs
                )
        if self._show_index:
            if not fs.may_block:
                raise WouldBlock(target.path)  # a directory's entries may not be cached
            page = self._listing(target.path, job.filename).encode()
            if self._live is not None:
                page = inject(page, self._live.injection.snippet) or page
            return web.Response(body=page, content_type="text/html", charset="utf-8")
        return web.HTTPForbidden()

    def _answer_file(
        self,
        job: _Job,
        target: _Target,
        fs: FileSystem,
        *,
        variant_only: bool = False,
        options: Options | None = None,
    ) -> web.StreamResponse | web.HTTPException:
        """Answer for a file; with ``variant_only``, only for a variant of it."""
        outcome = look_up(
            fs,
            target.path,
            self._options_for(target.path) if options is None else options,
            job.asked,
            None if variant_only else target.stat,
            target.above_changed_ns,
        )
        state = outcome.decision.state
        if state is FileResponseState.NOT_FOUND or (
            variant_only and outcome.encoding is None
        ):
            if outcome.file is not None:  # something appeared at the name meanwhile
                if not fs.may_block:
                    # Its close is the job's (see WouldBlock), and so the answer.
                    error = WouldBlock(target.path)
                    error.files.append(outcome.file)
                    raise error
                outcome.file.close()
            if outcome.has_variants:
                # A client that accepts the variant gets it here (§12.5.5).
                return web.HTTPNotFound(headers={hdrs.VARY: hdrs.ACCEPT_ENCODING})
            return web.HTTPNotFound()
        if state is FileResponseState.FORBIDDEN:
            return web.HTTPForbidden()
        immutable = job.immutable and not variant_only
        if job.version is not None and not variant_only and not immutable:
            try:
                immutable = job.version == self._version(target, fs)
            except WouldBlock as error:
                if outcome.file is not None:
                    error.files.append(outcome.file)
                raise
        # The caller's function last, so that it runs once, where the answer is made.
        fields = self._fields_for(target.path, outcome)
        return self._response(
            target.path,
            outcome,
            IMMUTABLE if immutable else self._cache_control,
            fields,
        )

    def _options_for(self, path: str) -> Options:
        """Return the options to answer for the file at ``path`` with."""
        if self._live is not None and content_type_of(path) == "text/html":
            return self._page_options
        return self._options

    def _hides(self, filename: str) -> bool:
        """Tell whether the route refuses a path below its root for its name."""
        return self._hide_dotfiles and _names_a_dotfile(filename)

    def _fields_for(self, path: str, outcome: Outcome) -> Fields:
        """Return the route's header fields for a 200, 206 or 304 of a file.

        A function of the route is given the file's path (the file a variant stands
        for) and the stat of what is answered with.  Should it raise or return what
        cannot be sent, the error goes up from the handler: a 500, logged once.
        """
        if outcome.decision.state not in _WITH_FIELDS:
            return ()
        function = self._headers_function
        if function is None:
            return self._fields
        assert outcome.stat is not None
        try:
            fields = function(path, outcome.stat)
            return () if fields is None else check_fields(fields, f"headers({path!r})")
        except BaseException:
            outcome.close()
            raise

    def _response(
        self,
        path: str,
        outcome: Outcome,
        cache_control: str | None,
        fields: Fields,
        *,
        status: int = 200,
        vary: tuple[str, ...] = (),
    ) -> ConditionalFileResponse:
        """Return the response that takes the outcome and its open file, to send."""
        headers = None
        if fields or vary:
            headers = CIMultiDict(fields)
            if hdrs.CACHE_CONTROL in headers:
                cache_control = None  # the caller's, for this file, wins
            for name in vary:
                add_vary(headers, name)
        return decided_response(
            path,
            outcome,
            chunk_size=self._chunk_size,
            cache_control=cache_control,
            use_executor=self._use_executor,
            status=status,
            headers=headers,
            text_charset=self._text_charset,
        )

    def _resolve(self, filename: str, fs: FileSystem = DISK) -> _Target | None:
        """Find a URL path's file inside the root, or None if it names none there.

        A stat of the root and one lstat per path segment, no other: the last one is
        the file's own.  ``..`` never reaches past the root; a symlink is followed
        only to a place inside the root unless ``follow_symlinks`` is set (the
        semantics of aiohttp's fix for CVE-2024-23334).  Where names fold case, each
        must also be spelled as its directory spells it (a listing, kept while the
        directory is unchanged); a symlink costs a realpath and its stats.
        """
        if filename.startswith("/") or "\x00" in filename or "\\" in filename:
            return None  # an absolute or UNC path, or no path at all
        names = [name for name in filename.split("/") if name and name != "."]
        if ".." in names:
            return None
        if WINDOWS and any(refused_on_windows(name) for name in names):
            return None
        # The root too: a deploy may rename another tree into its place.
        st = fs.stat(self._root)
        if not names:
            return _Target(self._root, st)
        above_changed_ns = st.st_ctime_ns
        # Asked once for the root's device; a directory on another is asked for its own.
        root_device, root_folds = st.st_dev, folds_case(st.st_dev)
        path = self._root
        last = len(names) - 1
        for position, name in enumerate(names):
            directory, directory_st = path, st
            path = f"{path}/{name}"
            st = fs.lstat(path)
            device = directory_st.st_dev
            folds = root_folds if device == root_device else folds_case(device)
            if folds and not self._names.spells(directory, directory_st, name, fs):
                return None  # a name in another case, or another spelling of it
            if is_link(st):
                rest = names[position + 1 :]
                target = self._follow(
                    os.path.join(path, *rest), st, fs, above_changed_ns
                )
                if (
                    target is not None
                    and rest
                    and folds_case(target.stat.st_dev)
                    and not self._spelled_below(path, rest, fs)
                ):
                    return None
                return target
            if position < last:
                if not S_ISDIR(st.st_mode):
                    return None  # a file used as a directory
                above_changed_ns = max(above_changed_ns, st.st_ctime_ns)
        return _Target(path, st, above_changed_ns)

    def _find(self, path: str, fs: FileSystem) -> _Target | None:
        """Stat one path known to be inside the root, following a symlink as allowed."""
        try:
            st = fs.lstat(path)
        except FileNotFoundError:
            return None
        if is_link(st):
            return self._follow(path, st, fs)
        return _Target(path, st)

    def _follow(
        self,
        path: str,
        link: os.stat_result,
        fs: FileSystem,
        above_changed_ns: int = 0,
    ) -> _Target | None:
        """Follow the symlink ``link`` (an lstat) that ``path`` passes through."""
        if not fs.may_block:
            raise WouldBlock(path)  # realpath reads links and stats each step
        real = os.path.realpath(path)
        if not self._may_reach(real):
            return None
        changed_ns = max(above_changed_ns, link.st_ctime_ns)
        return _Target(real, fs.stat(real), changed_ns)

    def _spelled_below(self, link: str, names: list[str], fs: FileSystem) -> bool:
        """Tell whether each of ``names``, below the symlink ``link``, is spelled so."""
        if not fs.may_block:
            raise WouldBlock(link)  # realpath reads links and stats each step
        directory = os.path.realpath(link)
        for name in names:
            if not self._names.spells(directory, fs.stat(directory), name, fs):
                return False
            directory = os.path.realpath(os.path.join(directory, name))
        return True

    def _may_reach(self, real: str) -> bool:
        """Tell whether the route serves what a symlink resolves to, ``real``."""
        inside = real == self._root or real.startswith(self._root_prefix)
        if not self._leaves_root and not inside:
            return False
        if self._hide_dotfiles:
            # What the link leads into, below what it shares with the root: a link
            # with a plain name to a hidden file or directory hides nothing.
            try:
                below = os.path.relpath(real, os.path.commonpath((real, self._root)))
            except ValueError:
                # Nothing in common (another drive, or a UNC path): all of it.
                below = os.path.splitdrive(real)[1]
            below = below.replace(os.sep, "/")
            return not _names_a_dotfile(below if inside else f"_/{below}")
        return True

    def _version(self, target: _Target, fs: FileSystem = DISK) -> str | None:
        """Return the version hash of a file, or None if it cannot be read now."""
        if not fs.may_block:
            found = known_hash(target.stat)
            if found is None:
                raise WouldBlock(target.path)  # hashing reads the whole file
            return found
        try:
            return content_hash(target.path, target.stat)
        except OSError:
            return None

    def _listing(self, path: str, filename: str) -> str:
        """Return the HTML index of a directory, at its URL path ``filename``.

        Its title and links follow the URL path, even where a symlink led elsewhere
        on disk: they stay under this route and tell nothing of the disk.
        """
        relative = "/".join(
            name for name in filename.split("/") if name not in ("", ".")
        )

        def hide(name: str) -> bool:
            return self._hide_dotfiles and _names_a_dotfile(f"{relative}/{name}")

        def reaches(link: str) -> bool:
            return self._may_reach(os.path.realpath(link))

        return listing(path, self._prefix, relative, hide, reaches)

    def __repr__(self) -> str:
        name = f"'{self.name}'" if self.name is not None else ""
        return (
            f"<ConditionalStaticResource {name} {self._prefix} -> {self._directory!r}>"
        )


def _is_relative_path(value: str) -> bool:
    """Tell whether an option names a path inside the root: relative, no ``..``."""
    names = value.split("/")
    return (
        bool(value)
        and not value.startswith("/")
        and ".." not in names
        and ("\x00" not in value and "\\" not in value)
        and not (WINDOWS and any(refused_on_windows(name) for name in names if name))
    )


def _accepts_html(method: str, accept: Iterable[str]) -> bool:
    """Tell whether a request is for a page to show, as a browser's for a page is."""
    return method == hdrs.METH_GET and any(
        "text/html" in value.lower() for value in accept
    )


def _navigates(method: str, filename: str, accept: str | None) -> bool:
    """Tell whether a request is a page navigation, which a fallback page answers.

    As the history fallback of single-page apps decides it: a GET or HEAD that
    accepts ``text/html`` for a path whose last segment has no dot, so that a
    missing script, stylesheet, image or JSON document still gets its 404.
    """
    if method not in (hdrs.METH_GET, hdrs.METH_HEAD) or accept is None:
        return False
    if "." in filename.rsplit("/", 1)[-1]:
        return False
    # Browsers send a few hundred characters; a longer value is not read.
    for member in accept[:2048].split(","):
        media_type, _, parameters = member.partition(";")
        if media_type.strip().lower() != "text/html":
            continue
        quality = parameters.replace(" ", "").lower()
        return not re.search(r"(?:^|;)q=0(?:\.0*)?(?:;|$)", quality)
    return False


def _names_a_dotfile(filename: str) -> bool:
    """Tell whether a path inside the route has a segment that starts with a dot.

    ``.well-known`` (RFC 8615) at the top of the route is published, not hidden.
    The path is the decoded one, so ``%2e`` is a dot here too.
    """
    names = [name for name in filename.split("/") if name and name != "."]
    if names and names[0] == _WELL_KNOWN:
        names = names[1:]
    return any(name.startswith(".") for name in names)


def add_static(
    router: web.UrlDispatcher | web.Application,
    prefix: str,
    path: PathLike,
    **kwargs: Any,
) -> ConditionalStaticResource:
    """Serve the files under ``path`` at ``prefix``, like ``router.add_static``.

    Takes what ``UrlDispatcher.add_static`` takes (``name``, ``expect_handler``,
    ``chunk_size``, ``show_index``, ``follow_symlinks``, ``append_version``, and
    from aiohttp's next release ``break_symlink_sandbox``, ``text_charset``), the
    options of :class:`ConditionalFileResponse` (``etag``, ``last_modified``,
    ``cache_control``, ``precompressed``, ``use_executor``), and:

    - ``index``: a file name to serve for a directory, such as ``"index.html"``;
    - ``fallback``: a single-page app's page, for page navigations to missing paths;
    - ``not_found``: a page for every 404 of the route;
    - ``extensions``: clean URLs, ``("html",)`` serving ``about.html`` for ``/about``;
    - ``immutable``: a pattern or a function of the path naming files that never
      change, and ``immutable_versions``: requests whose ``?v=`` is the file's hash,
      both then sent with a year-long immutable Cache-Control;
    - ``headers``: a mapping, or a function ``(path, stat_result)`` returning one,
      of header fields for the 200, 206 and 304 of each file;
    - ``dotfiles``: ``"deny"`` (the default) answers 404 for any path with a segment
      that starts with a dot, but ``.well-known`` at the top; ``"allow"`` serves them;
    - ``live``: for development only, reload every open page of the route when a
      file under ``path`` changes (needs ``watchfiles``, and ``router`` to be the
      application): each HTML page is sent with a script from
      ``<prefix>/__reload__/client.js``, which listens to
      ``<prefix>/__reload__/events``.
    """
    application = None
    if isinstance(router, web.Application):
        application, router = router, router.router
    assert prefix.startswith("/")
    if prefix.endswith("/"):
        prefix = prefix[:-1]
    resource = ConditionalStaticResource(prefix, path, **kwargs)
    live = resource.live
    if live is not None:
        if application is None:
            raise TypeError(
                "live=True needs the application, to watch while it runs: "
                "add_static(app, prefix, path, live=True)"
            )
        application.cleanup_ctx.append(live.context)
        # Before aiohttp waits for handlers to end: an event stream never would.
        application.on_shutdown.append(live.close_streams)
    router.register_resource(resource)
    return resource


@dataclasses.dataclass(frozen=True, repr=False)
class _StaticDef(web.AbstractRouteDef):
    prefix: str
    path: PathLike
    kwargs: dict[str, Any]

    def __repr__(self) -> str:
        info = "".join(f", {name}={value!r}" for name, value in self.kwargs.items())
        return f"<StaticDef {self.prefix} -> {self.path}{info}>"

    def register(self, router: web.UrlDispatcher) -> list[web.AbstractRoute]:
        resource = add_static(router, self.prefix, self.path, **self.kwargs)
        return list(resource)


def static(prefix: str, path: PathLike, **kwargs: Any) -> web.AbstractRouteDef:
    """Return a route definition for ``app.add_routes``, like ``web.static``."""
    return _StaticDef(prefix, path, kwargs)
