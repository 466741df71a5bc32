"""The streaming file ``AttachFileSystem.open`` returns.

Opening costs one ranged GET and no HEAD: the first block is fetched at open, and its response
tells the object's size and version. An object that fits in the first block is read with that
single request. Every later range is pinned to the version seen at open (fetch.py), so a reader
never gets bytes of two different objects.
"""

from __future__ import annotations

import os

from fsspec.asyn import sync
from fsspec.spec import AbstractBufferedFile

from . import fetch
from .rules import Route

DEFAULT_BLOCK_SIZE = 4 * 2**20


class AttachFile(AbstractBufferedFile):
    """A read-only file over one attachment (the route) read through ``inner``."""

    def __init__(self, fs, path: str, route: Route, inner, *, block_size=None,
                 cache_type: str = "readahead", cache_options=None, **kwargs):
        block_size = block_size if block_size not in (None, "default") else DEFAULT_BLOCK_SIZE
        self.route = route
        self._inner = inner
        self._pid = os.getpid()
        first = sync(fs.loop, fetch.read, inner, route, 0, block_size, config=fs.config)
        self.version = first.version
        self._first = first.data
        super().__init__(fs, path, mode="rb", block_size=block_size, cache_type=cache_type,
                         cache_options=cache_options, size=first.size, **kwargs)

    def __repr__(self) -> str:
        return f"<AttachFile {self.route.uri} tenant={self.route.tenant!r} mode={self.route.mode}>"

    def __reduce__(self):
        # Reopen in the receiving process through the (pickled-as-recipe) filesystem.
        return _reopen, (self.fs, self.path, self.blocksize, self.loc)

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if start >= end:
            return b""
        first = self._first
        if first is not None and end <= len(first):
            return first[start:end]
        loop = self.fs.loop
        if self._pid != os.getpid():  # inherited by a forked child: use the child's backends
            self._inner, _ = sync(loop, self.fs._inner, self.route)
            self._pid = os.getpid()
        part = sync(loop, fetch.read, self._inner, self.route, start, end, version=self.version,
                    config=self.fs.config)
        return part.data

    def close(self) -> None:
        self._first = None
        super().close()


def _reopen(fs, path, block_size, loc):
    f = fs.open(path, "rb", block_size=block_size)
    f.seek(loc)
    return f
