"""What one read returns (``Part``), and the one way ranges are asked for and answered."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["META_HEADERS", "ContentRange", "Part", "range_header", "size_from"]

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
        m = _CONTENT_RANGE.fullmatch(value.strip()) if value else None
        if m is None:
            return None
        first, last = int(m[1]), int(m[2])
        if last < first:
            return None
        return cls(first, last, None if m[3] == "*" else int(m[3]))


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
