"""The shared in-process block cache: bytes of object versions that open files have fetched.

Every open file of a process reads through one ``BlockCache`` (``shared()``), so several handles
on one object, a second pass over the same blocks, and reopening an object reuse what was
fetched instead of fetching it again.

* **Keyed by who and where.** An entry's key (``ObjectKey``) is the tenant, the identity and
  endpoint the read went to (S3 partition and endpoint, a configured endpoint URL, an Azure
  account's cloud), and the canonical URI: a read for tenant B never gets bytes fetched with
  tenant A's credentials, and the same bucket name in two partitions or at two endpoints never
  shares bytes.
* **One version per object.** Each object keeps the bytes of one version (S3/Azure ETag, GCS
  generation). Learning another version drops the old one's bytes, and a lookup for any other
  version misses: a replaced object's stale bytes are never served. A new handle does not take
  the cached version on trust: it asks the storage once (a conditional request) before using
  it, unless ``info()`` saw that version a moment ago (``INFO_TTL``, see ``recent``).
* **Bounded.** The bytes held are kept under ``max_bytes``, least recently used first out; one
  extent larger than an eighth of that is not kept. ``ATTACHFS_BLOCK_CACHE_BYTES`` sets the
  bound of the shared cache (0 turns it off).

Bytes are held as variable-sized extents (whatever each request fetched), not fixed blocks:
a read is sized to what the reader needs, and the cache keeps exactly that.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._fork import at_fork
from ._limits import BLOCK_CACHE_BYTES, INFO_TTL, bytes_setting

__all__ = ["BlockCache", "Extents", "ObjectKey", "shared"]

#: (tenant, scope: identity and endpoint, canonical URI)
ObjectKey = tuple[str | None, str, str]
Span = tuple[int, int]
#: The environment variable that bounds the shared cache (bytes; 0: no shared cache).
ENV = "ATTACHFS_BLOCK_CACHE_BYTES"


class Extents:
    """Byte ranges of one object version: sorted, never overlapping."""

    __slots__ = ("_data", "_starts", "nbytes")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._data: dict[int, bytes] = {}
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._starts)

    def find(self, start: int, end: int) -> tuple[list[tuple[int, bytes]], list[Span]]:
        """The stored pieces that overlap ``[start, end)`` (each whole, with its offset) and
        the gaps between them."""
        pieces: list[tuple[int, bytes]] = []
        gaps: list[Span] = []
        pos = start
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        while i < len(self._starts) and pos < end:
            s = self._starts[i]
            data = self._data[s]
            e = s + len(data)
            i += 1
            if e <= pos:
                continue
            if s >= end:
                break
            if s > pos:
                gaps.append((pos, s))
            pieces.append((s, data))
            pos = e
        if pos < end:
            gaps.append((pos, end))
        return pieces, gaps

    def put(self, start: int, data: bytes) -> list[tuple[int, int]]:
        """Keep ``data`` at ``start`` where nothing is stored yet; returns the (start, length)
        of each extent added."""
        end = start + len(data)
        if end <= start:
            return []
        _, gaps = self.find(start, end)
        added = []
        for s, e in gaps:
            piece = data if (s, e) == (start, end) else bytes(data[s - start:e - start])
            bisect.insort(self._starts, s)
            self._data[s] = piece
            self.nbytes += len(piece)
            added.append((s, len(piece)))
        return added

    def __contains__(self, start: object) -> bool:
        return start in self._data

    def drop_before(self, pos: int) -> int:
        """Forget the extents that end at or before ``pos``; returns the bytes forgotten."""
        dropped = 0
        while self._starts:
            s = self._starts[0]
            if s + len(self._data[s]) > pos:
                break
            dropped += self.remove(s)
        return dropped

    def remove(self, start: int) -> int:
        """Forget the extent at ``start``; returns its length (0: none there)."""
        data = self._data.pop(start, None)
        if data is None:
            return 0
        del self._starts[bisect.bisect_left(self._starts, start)]
        self.nbytes -= len(data)
        return len(data)

    def starts(self) -> list[int]:
        return list(self._starts)


def assemble(pieces: list[tuple[int, bytes]], start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` out of ``pieces`` that cover it, in order."""
    if len(pieces) == 1:
        s, data = pieces[0]
        if s == start and len(data) == end - start:
            return data
        return bytes(memoryview(data)[start - s:end - s])
    out = bytearray()
    for s, data in pieces:
        lo, hi = max(start, s) - s, min(end, s + len(data)) - s
        if hi > lo:
            out += memoryview(data)[lo:hi]
    return bytes(out)


@dataclass
class _Object:
    version: str | None
    size: int
    extents: Extents
    info: Mapping[str, Any] | None = None
    info_at: float = 0.0


class BlockCache:
    """Extents of object versions, LRU-bounded by bytes, shared by every open file."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._lock = threading.Lock()
        self._objects: dict[ObjectKey, _Object] = {}
        self._lru: OrderedDict[tuple[ObjectKey, int], int] = OrderedDict()
        self.nbytes = 0
        self._counts = {"hits": 0, "misses": 0, "evicted": 0}

    def __repr__(self) -> str:
        return (f"BlockCache(max_bytes={self.max_bytes}, bytes={self.nbytes}, "
                f"objects={len(self._objects)})")

    # -- what is known of an object ---------------------------------------------------------

    def current(self, key: ObjectKey) -> tuple[str | None, int] | None:
        """The (version, size) whose bytes are held for ``key``, if any."""
        with self._lock:
            obj = self._objects.get(key)
            return None if obj is None else (obj.version, obj.size)

    def learn(self, key: ObjectKey, version: str | None, size: int, *,
              info: Mapping[str, Any] | None = None) -> None:
        """The storage answered for ``key`` with ``version`` (of ``size`` bytes): bytes of any
        other version are dropped. ``info`` (what ``info()`` returns) is remembered with the
        time, for ``recent``."""
        if size < 0:
            return
        with self._lock:
            obj = self._objects.get(key)
            if obj is None or obj.version != version or obj.size != size:
                if obj is not None:
                    self._drop(key, obj)
                obj = self._objects[key] = _Object(version, size, Extents())
            if info is not None:
                obj.info, obj.info_at = info, time.monotonic()

    def recent(self, key: ObjectKey, max_age: float = INFO_TTL) -> _Object | None:
        """The object as ``info()`` described it less than ``max_age`` seconds ago, if so:
        an open that follows (pandas and pyarrow ask ``info`` first) reads that version."""
        with self._lock:
            obj = self._objects.get(key)
            if obj is None or obj.info is None or time.monotonic() - obj.info_at >= max_age:
                return None
            return obj

    def forget(self, key: ObjectKey, version: str | None = None) -> None:
        """Drop ``key``'s bytes (only if they are of ``version``, when given): the storage
        said that version is gone."""
        with self._lock:
            obj = self._objects.get(key)
            if obj is not None and (version is None or obj.version == version):
                self._drop(key, obj)
                del self._objects[key]

    # -- bytes ------------------------------------------------------------------------------

    def find(self, key: ObjectKey, version: str | None, start: int,
             end: int) -> tuple[list[tuple[int, bytes]], list[Span]]:
        """The held pieces of ``[start, end)`` of ``key`` at ``version``, and its gaps (all
        of it, when another version or nothing is held)."""
        with self._lock:
            obj = self._objects.get(key)
            if obj is None or obj.version != version or not len(obj.extents):
                self._counts["misses"] += 1
                return [], [(start, end)]
            pieces, gaps = obj.extents.find(start, end)
            for s, _ in pieces:
                self._lru.move_to_end((key, s))
            self._counts["hits" if not gaps else "misses"] += 1
            return pieces, gaps

    def put(self, key: ObjectKey, version: str | None, start: int, data: bytes) -> bool:
        """Keep bytes of ``key`` at ``version`` from ``start``; False (not kept) when another
        version is held, or when they are too large to keep."""
        if not data or len(data) > self.max_bytes // 8:
            return False
        with self._lock:
            obj = self._objects.get(key)
            if obj is None or obj.version != version:
                return False
            for s, n in obj.extents.put(start, bytes(data)):
                self._lru[(key, s)] = n
                self.nbytes += n
            self._evict()
        return True

    def _evict(self) -> None:
        while self.nbytes > self.max_bytes and self._lru:
            (key, s), _ = self._lru.popitem(last=False)
            obj = self._objects.get(key)
            if obj is not None:
                self.nbytes -= obj.extents.remove(s)
                self._counts["evicted"] += 1

    def _drop(self, key: ObjectKey, obj: _Object) -> None:
        for s in obj.extents.starts():
            self._lru.pop((key, s), None)
            self.nbytes -= obj.extents.remove(s)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._objects.clear()
            self._lru.clear()
            self.nbytes = 0

    def stats(self) -> dict[str, int]:
        """``hits``/``misses`` of lookups, ``evicted`` extents, and ``bytes``/``objects``
        held now."""
        with self._lock:
            return {**self._counts, "bytes": self.nbytes, "objects": len(self._objects),
                    "max_bytes": self.max_bytes}

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


def _configured_bytes() -> int:
    return bytes_setting(ENV, os.environ.get(ENV), BLOCK_CACHE_BYTES, "no shared block cache")


_shared: BlockCache | None = None
_shared_lock = threading.Lock()


def shared() -> BlockCache:
    """The process's block cache, bounded by ``ATTACHFS_BLOCK_CACHE_BYTES`` (default
    ``BLOCK_CACHE_BYTES``) when it is first used."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = BlockCache(_configured_bytes())
    return _shared


def _before_fork() -> None:
    _shared_lock.acquire()
    if _shared is not None:
        _shared._lock.acquire()


def _after_fork_in_parent() -> None:
    if _shared is not None:
        _shared._lock.release()
    _shared_lock.release()


def _after_fork_in_child() -> None:
    # The child keeps the parent's bytes (its own copy), with locks no other thread holds.
    global _shared_lock
    _shared_lock = threading.Lock()
    if _shared is not None:
        _shared._after_fork()


at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child)
