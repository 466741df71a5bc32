"""The one body reader of the read path, for every backend.

It appends a response body to a sink, optionally skipping its first bytes and stopping after
a number of bytes (a server that ignored ``Range`` sends the object from byte 0; the read skips
to the offset and stops once the range is covered, so memory stays bounded). When the size is
not announced, ``to_end`` reads on to the end, counting but not keeping what lies past the range,
and ``tail`` keeps only the last bytes (a suffix range answered with the whole object): memory
stays bounded by the range either way. It enforces the
body's limits: no byte for ``read_timeout`` seconds is a stall, fewer than ``min_rate`` bytes per
second over a ``read_timeout`` window is a drip, and the read's deadline ends it; each raises
``ReadTimeout`` naming the phase. A connection that breaks raises aiohttp's own error, which the
caller may resume from.

The sink is a ``bytearray`` (a body resumed attempt after attempt keeps growing one) or
``Chunks``: the chunks as they arrived, joined once at the end. A body of one chunk (most small
objects) is then handed on with no copy at all, and a longer one with exactly one copy, into a
``bytes`` of its final size; appending to a growing buffer and converting it would copy each
byte two or three times, which is where a large read's time went.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

from .._errors import ReadTimeout
from .._limits import Limits

__all__ = ["Chunks", "read_body"]


class Chunks:
    """A body as the chunks it arrived in; ``take()`` joins them once."""

    __slots__ = ("_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, chunk: bytes) -> None:
        """Append ``chunk`` (as ``bytearray.extend`` does, without copying it)."""
        if chunk:
            self._parts.append(chunk)
            self._size += len(chunk)

    def drop_front(self, n: int) -> None:
        """Forget the first ``n`` bytes (a tail keeps only the last ones)."""
        self._size -= n
        while n:
            first = self._parts[0]
            if len(first) <= n:
                n -= len(first)
                del self._parts[0]
            else:
                self._parts[0] = first[n:]
                n = 0

    def take(self) -> bytes:
        """The body as one ``bytes``: the chunk itself when there is one."""
        if len(self._parts) == 1:
            return self._parts[0]
        return b"".join(self._parts)


Sink = bytearray | Chunks


async def read_body(resp: aiohttp.ClientResponse, sink: Sink, *, limits: Limits,
                    url: str | Callable[[], str], deadline: float | None = None, skip: int = 0,
                    limit: int | None = None, to_end: bool = False,
                    tail: int | None = None) -> int:
    """Append the body of ``resp`` (after ``skip`` bytes, at most ``limit`` bytes) to ``sink``.

    Returns the number of body bytes received, skipped ones included. With ``to_end`` the body
    is read to its end even past ``limit`` (the bytes past it are counted, not kept), so the
    return value is the body's length. With ``tail``, only the last ``tail`` bytes of the body
    are kept. ``url`` is the redacted URL the timeouts name (or what makes it, called only
    when one is raised); ``deadline`` a ``time.monotonic()`` instant."""
    received = 0
    mark = len(sink)
    window_start, window_bytes = time.monotonic(), 0
    content = resp.content
    try:
        while True:
            chunk = await content.readany()
            if not chunk:
                return received
            received += len(chunk)
            window_bytes += len(chunk)
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            if limit is not None:
                if len(chunk) > limit:
                    chunk = chunk[:max(limit, 0)]
                limit -= len(chunk)
            sink.extend(chunk)
            if tail is not None and len(sink) - mark > tail:
                _drop(sink, mark, len(sink) - mark - tail)
            if limit is not None and limit <= 0 and not skip and not to_end:
                return received
            now = time.monotonic()
            if now - window_start >= limits.read_timeout:
                if window_bytes < limits.min_rate * (now - window_start):
                    raise ReadTimeout.too_slow(_named(url), window_bytes / (now - window_start),
                                               limits.min_rate, limits.read_timeout)
                window_start, window_bytes = now, 0
    except (asyncio.TimeoutError, TimeoutError) as err:
        if deadline is not None and time.monotonic() >= deadline - 0.01:
            raise ReadTimeout.past_deadline(_named(url), limits.total_timeout, "body") from err
        raise ReadTimeout.stalled(_named(url), limits.read_timeout, "body") from err


def _drop(sink: Sink, mark: int, n: int) -> None:
    """Forget ``n`` bytes of ``sink`` from ``mark`` on (what this read appended first)."""
    if isinstance(sink, Chunks):
        assert mark == 0  # a Chunks sink holds one body, from its start
        sink.drop_front(n)
    else:
        del sink[mark:mark + n]


def _named(url: str | Callable[[], str]) -> str:
    return url if isinstance(url, str) else url()
