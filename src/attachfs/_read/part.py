"""What one read returns (``Part``), and the one way ranges are asked for and answered."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["META_HEADERS", "ContentRange", "Part", "range_header", "size_from", "write_parts"]

#: The answer headers a Part keeps in ``meta``.
META_HEADERS = ("ETag", "Last-Modified", "Content-Type", "Content-Encoding",
                "x-amz-version-id", "x-goog-generation", "x-ms-version-id")

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Part:
    """Bytes of one object, as of ``version``; ``size`` is the whole object's size (-1: not
    known, for an empty range past the end)."""

    data: bytes
    start: int
    size: int
    version: str | None
    not_modified: bool = False  # a 304 to ``if_none_match``: the cached bytes are current
    #: What the answer said about the object beyond its bytes (``META_HEADERS``), for
    #: ``info()``: ETag, Last-Modified, Content-Type, the storage's version id.
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContentRange:
    """A ``Content-Range: bytes first-last/size`` header; ``size`` None for ``/*``."""

    first: int
    last: int
    size: int | None

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    @classmethod
    def parse(cls, value: str | None) -> ContentRange | None:
        return _parse_content_range(value) if value else None


@functools.lru_cache(maxsize=256)
def _parse_content_range(value: str) -> ContentRange | None:
    """Parsed once per distinct value: an answer's is read by more than one check, and the
    ranges of a scan repeat from object to object."""
    m = _CONTENT_RANGE.fullmatch(value.strip())
    if m is None:
        return None
    first, last = int(m[1]), int(m[2])
    if last < first:
        return None
    return ContentRange(first, last, None if m[3] == "*" else int(m[3]))


def range_header(start: int, end: int | None) -> str:
    """The ``Range`` value for bytes ``[start, end)``; ``start < 0`` is a suffix (the last
    ``-start`` bytes), ``end=None`` reads to the end."""
    if start < 0:
        return f"bytes={start}"
    return f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"


def ranged(start: int, end: int | None) -> bool:
    """Whether bytes ``[start, end)`` need a ``Range`` header (not the whole object)."""
    return start != 0 or end is not None


def size_from(content_range: str | None, start: int, length: int) -> int:
    """The object's size, from its ``Content-Range`` if it says, else what the body spans."""
    parsed = ContentRange.parse(content_range)
    if parsed is not None and parsed.size is not None:
        return parsed.size
    return start + length


async def write_parts(read: Callable[[int, int | None, str | None], Awaitable[Part]], out: Any,
                      chunk_size: int, callback: Any) -> None:
    """Write a whole object to ``out`` part by part (``read(start, end, version)``), every part
    pinned to the version of the first, reporting to an fsspec ``Callback`` (``set_size`` once
    the size is known, ``relative_update`` per part). An object that names no version cannot
    pin its parts, so after the first part the rest is read whole, in one answer."""
    pos, size, version = 0, -1, None
    while size < 0 or pos < size:
        part = await read(pos, pos + chunk_size, version)
        if size < 0:
            size, version = part.size, part.version
            callback.set_size(max(size, 0))
            if version is None and size > len(part.data):
                part = await read(0, None, None)
                size = len(part.data)
                callback.set_size(size)
        if not part.data:
            break
        out.write(part.data)
        pos += len(part.data)
        callback.relative_update(len(part.data))
