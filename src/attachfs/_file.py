"""The streaming file ``AttachFileSystem.open`` returns.

* **No HEAD, and no request at all at open.** The first read (or the first question about the
  size) makes one ranged GET whose response tells the object's size (``Content-Range``) and
  version, wherever it starts: a seek and a read on a new file is one request. Asking for the
  size first (as parquet and zip readers do, to seek to their footer) fetches the object's
  *tail*, where that footer is.
* **Fetches sized to the reads** (``_pattern``): a whole read fetches ``first_block`` (an
  attachment that fits is one request); a random read fetches what it needs and what reads like
  it went on to need; a stream gets read-ahead sized from its reads, in flight while the caller
  consumes the last window, growing to ``max_readahead``.
* **A shared block cache** (``_blocks``): bytes fetched are kept per tenant, identity, endpoint,
  object and version, for this file, other files on the same object and reopenings, within a
  bound for the whole process. A new file asks the storage once whether the cached version is
  still the object's (a conditional request, 304 and no bytes when it is) before using it.
* **Parquet scans** (``_parquet``): once a parquet footer is read and the reads show a scan of
  some columns, the chunks of those columns ahead of it are fetched concurrently.
* **The disk cache**, when the filesystem has one: whole small objects, and aligned blocks of
  larger ones (``_read.cached``).
* **fsspec's cache types** on request: ``cache_type="readahead"``, ``"blockcache"``,
  ``"bytes"``, ``"first"``, ``"all"``, ``"mmap"``, ``"parts"``, ``"background"``, ``"none"``
  ... (every type ``fsspec.caching.caches`` registers) give exactly that cache over this file's
  ranged GETs; the default, ``"default"``, is all of the above.
* **Bounded memory**: what the shared cache holds, plus per file the stream's windows (a
  stream keeps none behind the read it is at: at most about ``max_readahead`` held, and as
  much in flight) and the read being returned.
* **Version pinned.** Every request after the first carries the version seen then, so a reader
  never gets bytes of two different objects: ``IntegrityError`` instead.
* **Closing keeps the pool.** Read-ahead still in flight at close is let finish into the shared
  cache when it is small (``FINISH_ON_CLOSE``), so its connection goes back to the pool instead
  of being dropped; a larger one is cancelled.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections import deque
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from fsspec.asyn import sync
from fsspec.caching import caches
from fsspec.spec import AbstractBufferedFile

from . import _blocks, _read
from ._blocks import BlockCache, Extents, ObjectKey
from ._errors import IntegrityError
from ._gate import Gate
from ._limits import (
    CACHE_BLOCK,
    FINISH_ON_CLOSE,
    FIRST_BLOCK,
    HEAD_FETCH,
    MAX_READAHEAD,
    PREFETCH_CONCURRENCY,
    TAIL,
)
from ._net import loops
from ._parquet import Layout, Scan, footer_span
from ._pattern import Pattern
from ._read.cached import SUFFIX_RANGES, object_key, read_blocks, read_through, store_blocks
from ._read.cached import offset as _offset
from ._read.part import Part
from ._redact import redact
from ._rules import Route

if TYPE_CHECKING:
    from ._cache import DiskCache
    from ._config import Config

__all__ = ["AttachFile", "DEFAULT_CACHE", "cache_type_names"]

Span = tuple[int, int]
T = TypeVar("T")

#: Held bytes between two missing parts of a span below which one request fetches both.
_REFETCH = 16 * 2**10
#: The cache type of the adaptive reader (shared block cache, read-ahead, parquet scans).
DEFAULT_CACHE = "default"
#: ``cache_options`` of the default reader: name -> what it holds.
_OPTIONS: dict[str, type[Any]] = {
    "first_block": int, "max_readahead": int, "min_fetch": int, "head": int,
    "shared": bool, "prefetch": bool,
}


def cache_type_names() -> list[str]:
    """Every ``cache_type`` ``open`` accepts: the default reader's and fsspec's."""
    return [DEFAULT_CACHE, *sorted(name for name in caches if isinstance(name, str))]


def _check_cache_type(cache_type: str | None) -> str:
    """The cache type asked for; None (not given) is the default reader, as it is fsspec's
    own default for a file, and ``"none"`` asks for no cache at all."""
    if cache_type is None:
        return DEFAULT_CACHE
    if cache_type == DEFAULT_CACHE or (isinstance(cache_type, str) and cache_type in caches):
        return cache_type
    raise ValueError(f"unknown cache_type {cache_type!r}: use one of "
                     f"{', '.join(map(repr, cache_type_names()))} (or leave it out for "
                     f"{DEFAULT_CACHE!r})")


class _Claim:
    """Who fetches a read-ahead: the read-ahead itself once it holds a place at the gate
    (``started``), else a read that needs it now and fetches it at once (``taken``). Settled
    under the file's claim lock, from either thread, exactly once."""

    __slots__ = ("started", "taken")

    def __init__(self) -> None:
        self.started = False
        self.taken = False


@dataclass
class _Flight:
    """A read-ahead in flight: its span, whether it is a stream's window, and its claim.
    Its future's result is None when a read took the span over."""

    start: int
    end: int
    future: Future[Part | None]
    stream: bool
    claim: _Claim


class _Opener(Protocol):
    """What a file uses of the AttachFileSystem that opened it (which imports this module)."""

    cache: DiskCache | None
    config: Config | None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None: ...

    async def _inner(self, route: Route) -> tuple[Any, str]: ...

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any: ...


class AttachFile(AbstractBufferedFile):
    """A read-only file over one attachment (the route), read through ``inner``."""

    def __init__(self, fs: _Opener, path: str, route: Route, inner: Any, *,
                 block_size: int | Literal["default"] | None = None,
                 cache_type: str | None = DEFAULT_CACHE,
                 cache_options: dict[str, Any] | None = None,
                 known: tuple[str | None, int] | None = None, key: ObjectKey | None = None,
                 **kwargs: Any):
        # AbstractBufferedFile.__init__ asks for the size (a request) and builds an fsspec
        # cache; this file does neither, so it sets the attributes its base class reads.
        self.fs, self.path, self.mode = fs, path, "rb"
        self.route = route
        self._inner = inner
        self._pid = os.getpid()
        self._any_loop = _read.any_loop(route)
        self.cache_type = _check_cache_type(cache_type)
        self.cache_options = dict(cache_options or {})
        sized = isinstance(block_size, int) and block_size > 0
        self.loc = 0
        self.closed = False
        self.autocommit = True
        self.kwargs = kwargs
        self.cache: Any = None  # fsspec's cache, for the fsspec cache types
        self.version: str | None = None
        self.requests = 0  # ranged GETs made, for tests and curious callers
        self._size: int | None = None
        self.key: ObjectKey = key if key is not None else object_key(route, fs.config)
        self._local = _Local()
        self._inflight: list[_Flight] = []
        self._claims = threading.Lock()
        self._window: tuple[int, bytes] | None = None  # an fsspec cache's first answer
        self._scan: Scan | None = None
        self._footer_checked = False
        self._gate: Gate | None = None
        self._hold = self.cache_type == DEFAULT_CACHE  # fsspec's caches hold their own
        if not self._hold:
            self.blocksize = block_size if isinstance(block_size, int) and sized else (
                self.DEFAULT_BLOCK_SIZE)
            self._shared: BlockCache | None = None
            self._pattern = Pattern()
            self._prefetch_parquet = False
            self._auto_readahead: int | None = None
        else:
            self.blocksize = block_size if isinstance(block_size, int) and sized else FIRST_BLOCK
            options = _options(self.cache_options)
            first_block = max(1, int(options.get("first_block", self.blocksize)))
            max_readahead = int(options.get("max_readahead", max(MAX_READAHEAD, first_block)))
            self._pattern = Pattern(first_block=first_block, max_readahead=max_readahead,
                                    min_fetch=int(options.get("min_fetch", 0)),
                                    head=int(options.get("head", HEAD_FETCH)))
            shared = _blocks.shared()
            self._shared = shared if options.get("shared", True) and shared.max_bytes else None
            self._prefetch_parquet = bool(options.get("prefetch", True)) and bool(self._shared)
            self._local.limit = 2 * max_readahead + first_block
            # Unless the caller set it, a stream's read-ahead follows its link (``_fit_window``)
            # from this default.
            self._auto_readahead = None if "max_readahead" in options else max_readahead
        if known is not None and known[1] >= 0:  # what info() saw a moment ago
            self.version, self._size = known

    def __repr__(self) -> str:
        return (f"<AttachFile {redact(self.route.uri)} tenant={self.route.tenant!r} "
                f"mode={self.route.mode}>")

    __str__ = __repr__  # fsspec's names the path whole: a signed URL's query is its credential

    def __reduce__(self) -> tuple[Any, ...]:
        # Reopen in the receiving process through the (pickled-as-recipe) filesystem.
        return _reopen, (self.fs, self.path, self.blocksize, self.loc, self.cache_type,
                         self.cache_options)

    # -- size ----------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        if self._size is None:
            tail = min(TAIL, self._pattern.first_block)
            if self.route.backend in SUFFIX_RANGES:
                self._first(-tail, None)
            else:
                self._first(0, tail)
            if self._size is None:
                raise OSError(f"{self.route.uri}: the storage did not say the object's size")
        return self._size

    @size.setter
    def size(self, value: int) -> None:  # AbstractBufferedFile.details assigns it
        self._size = value

    # -- reading -------------------------------------------------------------------------------

    def read(self, length: int = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        length = -1 if length is None else int(length)
        if length == 0:
            return b""
        if self.cache_type != DEFAULT_CACHE:
            out = self._read_fsspec(length)
        else:
            out = self._read_default(length)
        self.loc += len(out)
        return out

    def _read_default(self, length: int) -> bytes:
        start = self.loc
        if self._size is None:
            data = self._first(start, None if length < 0 else start + length)
            if self._size is None:  # nothing at or past ``start``
                return data
            end = self._size if length < 0 else min(start + length, self._size)
            if start + len(data) >= end:
                return data[:max(end - start, 0)]
        end = self._size if length < 0 else min(start + length, self._size)
        if start >= end:
            return b""
        return self._read_range(start, end)

    def _read_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` (within the object), from what is held, in flight or
        fetched now as the access pattern says."""
        assert self._size is not None
        self._harvest()
        pieces, gaps = self._lookup(start, end)
        waits = [f for f in self._inflight if any(f.start < ge and gs < f.end for gs, ge in gaps)]
        taken = self._take_over(waits)
        if taken:
            waits = [f for f in waits if f not in taken]
        missing = _subtract(gaps, [(f.start, f.end) for f in waits])
        if self._auto_readahead is not None and self._pattern.streaming:
            self._fit_window(self._auto_readahead)
        plan = self._pattern.plan(start, end, self._size, missing)
        if plan.prefetch:
            self._prefetch(self._missing(*plan.prefetch), stream=True)
        if self._prefetch_parquet:
            self._prefetch([span for s, e in self._parquet_ahead(start, end)
                            for span in self._missing(s, e)], stream=False)
        wanted = _union(list(plan.fetch) + [(f.start, f.end) for f in taken])
        fetch = [span for s, e in wanted for span in self._missing(s, e)]
        if fetch:
            pieces += [(_offset(part), part.data) for part in self._run(self._fetch_all(fetch))]
        for flight in waits:
            part = self._wait(flight.future)
            pieces.append((_offset(part), part.data))
        data = self._assemble(pieces, start, end)
        if self._pattern.streaming:
            # A stream does not go back: what lies before this read is not kept for it (the
            # windows ahead are), which bounds its memory by the read-ahead, not twice that.
            self._local.drop_before(start)
        return data

    def _fit_window(self, default: int) -> None:
        """Fit a stream's read-ahead to the window its link needs now: larger on a link
        measured slow (each part waits long for its first byte), back to ``default`` where it
        is not; and what this file holds with it."""
        wanted = max(_read.window(self.route, self.fs.config), default)
        if wanted != self._pattern.max_readahead:
            self._pattern.max_readahead = wanted
            self._local.limit = 2 * wanted + self._pattern.first_block

    def _assemble(self, pieces: list[tuple[int, bytes]], start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` out of ``pieces`` (fetching what they miss, as asked)."""
        pieces.sort(key=lambda piece: piece[0])
        out: list[tuple[bytes, int, int]] = []
        pos = start
        for s, data in pieces:
            if s > pos or s + len(data) <= pos:
                continue
            stop = min(end, s + len(data))
            out.append((data, pos - s, stop - s))
            pos = stop
            if pos >= end:
                break
        if pos < end:  # evicted between the lookup and now: fetch what is left as asked
            (part,) = self._run(self._fetch_all([(pos, end)]))
            out.append((part.data, pos - _offset(part), end - _offset(part)))
        if len(out) == 1:
            data, lo, hi = out[0]
            return data if (lo, hi) == (0, len(data)) else data[lo:hi]
        return b"".join(memoryview(data)[lo:hi] for data, lo, hi in out)

    # -- what is held ----------------------------------------------------------------------

    def _lookup(self, start: int, end: int) -> tuple[list[tuple[int, bytes]], list[Span]]:
        """The held pieces of ``[start, end)`` (this file's own, then the shared cache's at
        this file's version) and what is missing."""
        pieces, gaps = self._local.find(start, end)
        if self._shared is None or self.version is None or not gaps:
            return pieces, gaps
        missing: list[Span] = []
        for gs, ge in gaps:
            found, holes = self._shared.find(self.key, self.version, gs, ge)
            pieces += found
            missing += holes
        return pieces, missing

    def _missing(self, start: int, end: int) -> list[Span]:
        """The parts of ``[start, end)`` neither held nor in flight, as requests: two parts
        with less than ``_REFETCH`` held bytes between them are one request."""
        _, gaps = self._lookup(start, end)
        merged: list[Span] = []
        for s, e in _subtract(gaps, [(f.start, f.end) for f in self._inflight]):
            if merged and s - merged[-1][1] < _REFETCH:
                merged[-1] = (merged[-1][0], e)
            else:
                merged.append((s, e))
        return merged

    def _keep(self, part: Part, *, stream: bool = False) -> None:
        """Hold a fetched part: in the shared cache when its version is known (a large
        object's stream windows only in this file), else in this file."""
        if not self._hold or not part.data:
            return
        start = _offset(part)
        if (self._shared is not None and part.version is not None
                and part.version == self.version
                and (not stream or (self._size or 0) <= self._shared.max_bytes // 8)
                and self._shared.put(self.key, part.version, start, part.data)):
            return
        self._local.put(start, part.data)

    # -- the first request -----------------------------------------------------------------

    def _first(self, start: int, end: int | None) -> bytes:
        """The first request of this file: learns the size and version. A version held in the
        shared cache is confirmed with a conditional request and then used."""
        held = self._candidate(start, end)
        if held is not None:
            return held
        if start < 0:
            s, e = start, None
        else:
            asked = end if end is not None else start + self._pattern.first_block
            s, e = self._pattern.plan(start, end, None, [(start, asked)]).fetch[0]
        part = self._call(self._fetch_first(s, e))
        if part.size < 0:  # nothing at or past ``start``: the size stays unknown
            return b""
        self._learn(part)
        self._keep(part)
        offset = _offset(part)
        if start < 0:
            self._pattern.speculated(offset, offset + len(part.data))
            return part.data
        lo, hi = start - offset, len(part.data) if end is None else end - offset
        return part.data if (lo, hi) == (0, len(part.data)) else part.data[lo:hi]

    def _candidate(self, start: int, end: int | None) -> bytes | None:
        """The bytes of ``[start, end)`` from the shared cache's version of the object, once
        the storage confirmed that version (None: not all held, or another version now)."""
        if self._shared is None:
            return None
        held = self._shared.current(self.key)
        if held is None:
            return None
        version, size = held
        if version is None:
            return None
        lo = size + start if start < 0 else start
        hi = size if end is None else min(end, size)
        if start < 0:
            lo = max(0, lo)
        if hi <= lo:
            return None
        pieces, gaps = self._shared.find(self.key, version, lo, hi)
        if gaps:
            return None
        if self.route.location.version is None:  # a live object: is it still that version?
            part = self._call(self._conditional(lo, hi, version))
            if not part.not_modified:  # replaced: these are the new version's bytes
                self._learn(part)
                self._keep(part)
                return part.data
        self.version, self._size = version, size
        self._shared.learn(self.key, version, size)
        if start >= 0:
            self._pattern.plan(lo, hi, size, [])
        return self._assemble(pieces, lo, hi)

    def _learn(self, part: Part) -> None:
        self._size, self.version = part.size, part.version
        if self._shared is not None and part.version is not None:
            self._shared.learn(self.key, part.version, part.size)

    # -- requests ----------------------------------------------------------------------------

    async def _get(self, start: int, end: int | None, *, version: str | None = None,
                   if_none_match: str | None = None) -> Part:
        self.requests += 1
        return await _read.read(self._inner, self.route, start, end, version=version,
                                config=self.fs.config, if_none_match=if_none_match)

    async def _conditional(self, start: int, end: int, version: str) -> Part:
        return await _read.guarded(self.route, self._get(start, end, if_none_match=version))

    async def _fetch_first(self, start: int, end: int | None) -> Part:
        """The first request, through the disk cache when there is one: a whole cached object
        answers every later read with no request; an aligned block is kept."""
        cache = self.fs.cache
        if cache is None:
            return await _read.guarded(self.route, self._get(start, end))

        async def read(start: int, end: int | None, if_none_match: str | None) -> Part:
            return await self._get(start, end, if_none_match=if_none_match)

        if start >= 0 and end is not None:
            start, end = start // CACHE_BLOCK * CACHE_BLOCK, -(-end // CACHE_BLOCK) * CACHE_BLOCK
        part = await _read.guarded(self.route, read_through(cache, self.route, read,
                                                            start, end))
        if len(part.data) != part.size and part.start >= 0:
            await store_blocks(cache, self.route, part, CACHE_BLOCK)
        return part

    async def _fetch(self, start: int, end: int) -> Part:
        """One span, pinned to this file's version; through the disk cache's blocks when the
        filesystem has one."""
        cache = self.fs.cache
        version = self.version

        async def read(start: int, end: int | None, if_none_match: str | None) -> Part:
            return await self._get(start, end, version=version)

        if cache is not None and self._size is not None:
            coro = read_blocks(cache, self.route, read, start, end, version=version,
                               size=self._size, block=CACHE_BLOCK)
        else:
            coro = read(start, end, None)
        return await _read.guarded(self.route, coro)

    async def _fetch_all(self, spans: list[Span]) -> list[Part]:
        """Several spans at once (the one place that gathers them)."""
        return list(await asyncio.gather(*(self._fetch(s, e) for s, e in spans)))

    def _run(self, coro: Coroutine[Any, Any, list[Part]]) -> list[Part]:
        parts = self._call(coro)
        for part in parts:
            self._keep(part)
        return parts

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` and wait for it: on the calling thread's own loop where the route's
        reads can (no hand-over to the I/O thread and back), else on fsspec's loop."""
        try:
            here = loops.here() if self._any_loop else None
            if here is None:
                result: T = sync(self._loop(), lambda: coro)
            else:
                if self._pid != os.getpid():
                    self._loop()  # inherited by a forked child: take the child's backends
                result = here.run(coro)
            return result
        except IntegrityError:
            if self._shared is not None:
                self._shared.forget(self.key, self.version)
            raise

    # -- read-ahead in flight ------------------------------------------------------------------

    def _prefetch(self, spans: list[Span], *, stream: bool) -> None:
        for s, e in spans:
            if e > s:
                claim = _Claim()
                future = asyncio.run_coroutine_threadsafe(self._gated(s, e, claim), self._loop())
                self._inflight.append(_Flight(s, e, future, stream, claim))

    def _take_over(self, flights: list[_Flight]) -> list[_Flight]:
        """The fetches ahead among ``flights`` that have not begun (they wait for a place at
        the gate, or for their loop to start them): a read that needs one now fetches it
        itself, at once and on its own loop, rather than wait behind fetches it does not need
        yet. They leave the flights in the air; their own fetch will not happen. A stream's
        windows are not taken over: they are asked for in the order they are read, none waits
        behind one that is read later, and a window fetched by the read itself would be kept
        as a random read's bytes are (in the shared cache), not dropped as the stream passes."""
        taken = []
        with self._claims:
            for flight in flights:
                if not flight.claim.started and not flight.stream:
                    flight.claim.taken = True
                    taken.append(flight)
        if taken:
            self._inflight = [f for f in self._inflight if not f.claim.taken]
        return taken

    async def _gated(self, start: int, end: int, claim: _Claim) -> Part | None:
        if self._gate is None:
            self._gate = Gate(PREFETCH_CONCURRENCY)
        gate = self._gate
        await gate.acquire()
        try:
            with self._claims:
                if claim.taken:
                    return None  # a read needed it first, and fetched it
                claim.started = True
            parts = await self._fetch_all([(start, end)])
        finally:
            gate.release()
        return parts[0]

    def _wait(self, future: Future[Part | None]) -> Part:
        """The part of a read-ahead that had begun (only one not begun is taken over)."""
        try:
            part = future.result()
        except IntegrityError:
            if self._shared is not None:
                self._shared.forget(self.key, self.version)
            raise
        assert part is not None
        self._harvest()
        return part

    def _harvest(self) -> None:
        """Hold what finished read-ahead brought."""
        pending = []
        for flight in self._inflight:
            future = flight.future
            if not future.done():
                pending.append(flight)
            elif not future.cancelled() and future.exception() is None:
                part = future.result()
                if part is not None:
                    self._keep(part, stream=flight.stream)
        self._inflight = pending

    def _parquet_ahead(self, start: int, end: int) -> list[Span]:
        if self._scan is None:
            if self._footer_checked or self._size is None:
                return []
            self._scan = self._parquet_scan()
            if self._scan is None:
                return []
        return self._scan.observe(start, end)

    def _parquet_scan(self) -> Scan | None:
        assert self._size is not None and self._shared is not None
        pieces, gaps = self._lookup(max(0, self._size - 8), self._size)
        if gaps:
            return None  # the footer is not read yet
        self._footer_checked = True
        span = footer_span(self._assemble(pieces, max(0, self._size - 8), self._size),
                           self._size)
        if span is None:
            return None
        pieces, gaps = self._lookup(*span)
        if gaps:
            return None
        layout = Layout.parse(self._assemble(pieces, *span))
        if layout is None:
            return None
        return Scan(layout, max_ahead=self._shared.max_bytes // 4)

    # -- fsspec's cache types ----------------------------------------------------------------

    def _read_fsspec(self, length: int) -> bytes:
        if self.cache is None:
            if self._size is None:
                self._first_window(length)
            if self._size is None:  # past the end of an object whose size is not known
                return b""
            self.cache = caches[self.cache_type](self.blocksize, self._fetch_range,
                                                 self._size, **self.cache_options)
        end = self.size if length < 0 else min(self.loc + length, self.size)
        if self.loc >= end:
            return b""
        out: bytes = self.cache._fetch(self.loc, end)
        return out

    def _first_window(self, length: int) -> None:
        """The first request of an fsspec-cached file: what that cache will ask for first
        (its aligned block, its read-ahead), so that learning the size costs no extra GET."""
        start, bs = self.loc, self.blocksize
        if self.cache_type == "all" or length < 0:
            s, e = 0, None
        elif self.cache_type == "none":
            s, e = start, start + length
        else:
            s = start // bs * bs
            e = max(start + length + bs, -(-(start + length) // bs) * bs)
        part = self._call(self._fetch_first(s, e))
        if part.size >= 0:
            self._size, self.version = part.size, part.version
            self._window = (_offset(part), part.data)

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if end <= start:
            return b""
        if self._window is not None:
            w_start, data = self._window
            self._window = None  # one use: the cache keeps what it wants of it
            if w_start <= start and end <= w_start + len(data):
                return data[start - w_start:end - w_start]
        (part,) = self._call(self._fetch_all([(start, end)]))
        offset = _offset(part)
        return part.data[start - offset:end - offset]

    # -- the event loop ------------------------------------------------------------------------

    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = self.fs.loop
        assert loop is not None  # only a synchronous filesystem (it has a loop) opens files
        if self._pid != os.getpid():  # inherited by a forked child: use the child's backends
            self._inner, _ = sync(loop, self.fs._inner, self.route)
            self._pid = os.getpid()
            self._inflight = []
            self._gate = None
            self._claims = threading.Lock()  # another thread may have held it at the fork
        return loop

    # -- the rest of the file interface ------------------------------------------------------

    def seek(self, loc: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            new = loc
        elif whence == io.SEEK_CUR:
            new = self.loc + loc
        elif whence == io.SEEK_END:
            new = self.size + loc
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if new < 0:
            raise ValueError("Seek before start of file")
        self.loc = new
        return self.loc

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._harvest()
        for flight in self._inflight:
            if flight.end - flight.start <= FINISH_ON_CLOSE:
                # Let it finish (its connection goes back to the pool), into the shared cache.
                keep = self._kept_on_close(flight.stream)
                flight.future.add_done_callback(keep)
            else:
                flight.future.cancel()
        self._inflight = []
        self._local = _Local()
        closing = getattr(self.cache, "close", None)
        if callable(closing):
            closing()
        self.cache = None

    def _kept_on_close(self, stream: bool) -> Any:
        shared, key, version, size = self._shared, self.key, self.version, self._size or 0

        def keep(future: Future[Part | None]) -> None:
            if shared is None or future.cancelled() or future.exception() is not None:
                return
            part = future.result()
            if part is None:
                return
            if (part.version is not None and part.version == version
                    and (not stream or size <= shared.max_bytes // 8)):
                shared.put(key, part.version, _offset(part), part.data)

        return keep


class _Local:
    """One file's own bytes (a large object's stream windows; all of them without a shared
    cache), the oldest dropped past ``limit``."""

    def __init__(self) -> None:
        self.extents = Extents()
        self.order: deque[int] = deque()
        self.limit = 2 * MAX_READAHEAD + FIRST_BLOCK

    def find(self, start: int, end: int) -> tuple[list[tuple[int, bytes]], list[Span]]:
        return self.extents.find(start, end)

    def put(self, start: int, data: bytes) -> None:
        for s, _ in self.extents.put(start, data):
            self.order.append(s)
        while self.extents.nbytes > self.limit and len(self.order) > 1:
            self.extents.remove(self.order.popleft())

    def drop_before(self, pos: int) -> None:
        """Forget what ends at or before ``pos``: a stream has read past it."""
        if self.extents.drop_before(pos):
            while self.order and self.order[0] not in self.extents:
                self.order.popleft()


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ValueError(f"unknown cache_options {unknown} for the default reader: it takes "
                         f"{', '.join(sorted(_OPTIONS))} (fsspec's cache types take their "
                         "own, with cache_type=...)")
    for name, value in options.items():
        kind = _OPTIONS[name]
        if not isinstance(value, kind) or (kind is int and (isinstance(value, bool)
                                                            or value < 0)):
            raise ValueError(f"cache_options[{name!r}] must be a "
                             f"{'non-negative int' if kind is int else kind.__name__}, "
                             f"not {value!r}")
    return options


def _union(spans: list[Span]) -> list[Span]:
    """``spans`` sorted, the overlapping and touching ones made one."""
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _subtract(spans: list[Span], holes: list[Span]) -> list[Span]:
    """``spans`` less every byte of ``holes``."""
    out: list[Span] = []
    for s, e in spans:
        pieces = [(s, e)]
        for hs, he in holes:
            pieces = [p for a, b in pieces
                      for p in ((a, min(b, hs)), (max(a, he), b)) if p[1] > p[0]]
        out += pieces
    return out


def _reopen(fs: _Opener, path: str, block_size: int, loc: int,
            cache_type: str = DEFAULT_CACHE,
            cache_options: dict[str, Any] | None = None) -> AttachFile:
    f: AttachFile = fs.open(path, "rb", block_size=block_size, cache_type=cache_type,
                            cache_options=cache_options)
    f.seek(loc)
    return f
