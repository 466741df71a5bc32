"""The streaming file ``AttachFileSystem.open`` returns.

* **No HEAD, and no request at all at open.** The first read (or the first question about the
  size) makes one ranged GET whose response tells the object's size and version. Reading from
  the start fetches at least ``first_block``, so an attachment that fits is read with that one
  request; asking for the size first (as parquet and zip readers do, to seek to their footer)
  fetches the object's *tail* with a suffix range instead, where that footer is.
* **Read-ahead that adapts.** Reads that continue where the last one ended double the
  read-ahead, up to ``max_readahead``; a seek elsewhere drops it back and fetches what was asked
  for (at least ``min_fetch``, so small neighbouring reads coalesce), never tens of MiB per seek.
  While the caller consumes one window, the next one is already in flight.
* **Bounded memory.** One window is held (at most ``max_readahead`` plus what one read asked
  for) and one prefetch in flight, whatever the object's size.
* **Version pinned.** Every request after the first carries the version seen then (the read path), so
  a reader never gets bytes of two different objects: ``IntegrityError`` instead.
"""

from __future__ import annotations

import asyncio
import io
import os
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal, Protocol

from fsspec.asyn import sync
from fsspec.spec import AbstractBufferedFile

from . import _read
from ._limits import FIRST_BLOCK, MAX_READAHEAD, MIN_FETCH, TAIL
from ._read.cached import read_through
from ._read.part import Part
from ._redact import redact
from ._rules import Route

if TYPE_CHECKING:
    from ._cache import DiskCache
    from ._config import Config

#: Backends whose servers answer suffix ranges (bytes=-N); Azure Blob does not.
_SUFFIX_RANGES = ("s3", "gcs", "http")


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
                 cache_type: str | None = None, cache_options: dict[str, Any] | None = None,
                 **kwargs: Any):
        # AbstractBufferedFile.__init__ asks for the size (a request) and builds an fsspec
        # cache; this file does neither, so it sets the attributes its base class reads.
        self.fs, self.path, self.mode = fs, path, "rb"
        self.route = route
        self._inner = inner
        self._pid = os.getpid()
        self.blocksize = (FIRST_BLOCK if block_size is None or block_size == "default"
                          else block_size)
        options = dict(cache_options or {})
        self.first_block = max(1, int(options.get("first_block", self.blocksize)))
        self.min_fetch = int(options.get("min_fetch", min(MIN_FETCH, self.first_block)))
        self.max_readahead = int(options.get("max_readahead", max(MAX_READAHEAD,
                                                                   self.first_block)))
        self.loc = 0
        self.closed = False
        self.autocommit = True
        self.kwargs = kwargs
        self.cache = None
        self.version: str | None = None
        self.requests = 0  # ranged GETs made, for tests and curious callers
        self._size: int | None = None
        self._buf = b""
        self._buf_start = 0
        self._readahead = 0
        self._next: tuple[int, Future[Part]] | None = None

    def __repr__(self) -> str:
        return (f"<AttachFile {redact(self.route.uri)} tenant={self.route.tenant!r} "
                f"mode={self.route.mode}>")

    __str__ = __repr__  # fsspec's names the path whole: a signed URL's query is its credential

    def __reduce__(self) -> tuple[Any, ...]:
        # Reopen in the receiving process through the (pickled-as-recipe) filesystem.
        return _reopen, (self.fs, self.path, self.blocksize, self.loc)

    # -- size and the first request ------------------------------------------------------------

    @property
    def size(self) -> int:
        if self._size is None:
            tail = min(TAIL, self.first_block)
            if self.route.backend in _SUFFIX_RANGES:
                self._get(-tail, None)
            else:
                self._get(0, tail)
        assert self._size is not None  # _get learnt it from the first response
        return self._size

    @size.setter
    def size(self, value: int) -> None:  # AbstractBufferedFile.details assigns it
        self._size = value

    # -- reading ---------------------------------------------------------------------------

    def read(self, length: int = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        length = -1 if length is None else int(length)
        if self._size is None and self.loc == 0 and length != 0:
            # The first request, from the start: a whole read asks for a first block (an
            # attachment that fits is then read with this one request); a read of n bytes asks
            # for n, at least the minimum fetch, so a 1 KiB peek does not pull megabytes.
            want = self.first_block if length < 0 else max(length, self.min_fetch)
            self._get(0, want)
        if length < 0:
            length = self.size - self.loc
        start, end = self.loc, min(self.loc + length, self.size)
        if start >= end:
            return b""
        out = self._read_range(start, end)
        self.loc += len(out)
        return out

    def _read_range(self, start: int, end: int) -> bytes:
        buf_end = self._buf_start + len(self._buf)
        if self._buf_start <= start and end <= buf_end:
            return self._buf[start - self._buf_start:end - self._buf_start]
        head = b""
        if self._buf_start <= start < buf_end:
            head = self._buf[start - self._buf_start:]  # keep the window's tail
            start = buf_end
        if start == buf_end:  # continuing where the last read ended: read further ahead
            self._readahead = min(max(self._readahead * 2, self.min_fetch), self.max_readahead)
        else:  # a seek: fetch what is asked for, no read-ahead
            self._readahead = 0
        data = self._take_prefetch(start)
        if data is None:
            data = self._get(start, min(self.size, max(end, start + self.min_fetch)
                                        + self._readahead))
        elif start + len(data) < end:
            data = b"".join((data, self._get(start + len(data),
                                             min(self.size, end + self._readahead))))
        self._buf, self._buf_start = data, start
        new_end = start + len(data)
        if self._readahead and new_end < self.size:
            self._prefetch(new_end, min(self.size, new_end + self._readahead))
        n = end - start
        if not head:  # one copy of what was asked for (none when it is the whole window)
            return data if n >= len(data) else data[:n]
        return b"".join((head, memoryview(data)[:n]))

    def _get(self, start: int, end: int | None) -> bytes:
        """One ranged GET (``start < 0``: the last ``-start`` bytes); learns size and version
        from the first response and pins every later one to that version."""
        part: Part
        if self._size is None and self.fs.cache is not None:
            part = sync(self._loop(), self._first_cached, start, end)
        else:
            part = sync(self._loop(), self._fetch, start, end)
        if self._size is None:
            self._size, self.version = part.size, part.version
            # The first response becomes the window (a suffix ends at the object's end).
            self._buf = part.data
            self._buf_start = self._size - len(part.data) if start < 0 else start
        return part.data

    async def _fetch(self, start: int, end: int | None) -> Part:
        self.requests += 1
        return await _read.guarded(self.route, _read.read(
            self._inner, self.route, start, end, version=self.version, config=self.fs.config))

    async def _first_cached(self, start: int, end: int | None) -> Part:
        """The first request, through the disk cache (``_read.cached``): a whole cached object
        answers every later read with no request."""
        async def read(start: int, end: int | None, if_none_match: str | None) -> Part:
            self.requests += 1
            return await _read.read(self._inner, self.route, start, end,
                                    version=self.version, config=self.fs.config,
                                    if_none_match=if_none_match)

        cache = self.fs.cache
        assert cache is not None  # _get reads through the cache only when there is one
        return await _read.guarded(self.route, read_through(cache, self.route, read,
                                                            start, end))

    # -- prefetch: the next window in flight while the caller consumes this one ---------------

    def _prefetch(self, start: int, end: int) -> None:
        self._cancel_prefetch()
        future = asyncio.run_coroutine_threadsafe(self._fetch(start, end), self._loop())
        self._next = (start, future)

    def _take_prefetch(self, start: int) -> bytes | None:
        if self._next is None:
            return None
        n_start, future = self._next
        self._next = None
        if n_start != start:
            future.cancel()
            return None
        return future.result().data

    def _cancel_prefetch(self) -> None:
        if self._next is not None:
            self._next[1].cancel()
            self._next = None

    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = self.fs.loop
        assert loop is not None  # only a synchronous filesystem (it has a loop) opens files
        if self._pid != os.getpid():  # inherited by a forked child: use the child's backends
            self._inner, _ = sync(loop, self.fs._inner, self.route)
            self._pid = os.getpid()
            self._next = None
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

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self._read_range(start, min(end, self.size))

    def close(self) -> None:
        self._cancel_prefetch()
        self._buf = b""
        self.closed = True


def _reopen(fs: _Opener, path: str, block_size: int, loc: int) -> AttachFile:
    f: AttachFile = fs.open(path, "rb", block_size=block_size)
    f.seek(loc)
    return f
