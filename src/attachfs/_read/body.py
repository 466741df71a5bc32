"""The one body reader of the read path, for every backend.

It appends a response body to a buffer, optionally skipping its first bytes and stopping after
a number of bytes (a server that ignored ``Range`` sends the object from byte 0; the read skips
to the offset and stops once the range is covered, so memory stays bounded). When the size is
not announced, ``to_end`` reads on to the end, counting but not keeping what lies past the range,
and ``tail`` keeps only the last bytes (a suffix range answered with the whole object): memory
stays bounded by the range either way. It enforces the
body's limits: no byte for ``read_timeout`` seconds is a stall, fewer than ``min_rate`` bytes per
second over a ``read_timeout`` window is a drip, and the read's deadline ends it; each raises
``ReadTimeout`` naming the phase. A connection that breaks raises aiohttp's own error, which the
caller may resume from.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from .._errors import ReadTimeout
from .._limits import Limits

__all__ = ["read_body"]


async def read_body(resp: aiohttp.ClientResponse, sink: bytearray, *, limits: Limits,
                    url: str, deadline: float | None = None, skip: int = 0,
                    limit: int | None = None, to_end: bool = False,
                    tail: int | None = None) -> int:
    """Append the body of ``resp`` (after ``skip`` bytes, at most ``limit`` bytes) to ``sink``.

    Returns the number of body bytes received, skipped ones included. With ``to_end`` the body
    is read to its end even past ``limit`` (the bytes past it are counted, not kept), so the
    return value is the body's length. With ``tail``, only the last ``tail`` bytes of the body
    are kept. ``url`` is the redacted URL the timeouts name; ``deadline`` a
    ``time.monotonic()`` instant."""
    received = 0
    mark = len(sink)
    window_start, window_bytes = time.monotonic(), 0
    try:
        while True:
            chunk = await resp.content.readany()
            if not chunk:
                return received
            received += len(chunk)
            window_bytes += len(chunk)
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            if limit is not None:
                chunk = chunk[:max(limit, 0)]
                limit -= len(chunk)
            sink += chunk
            if tail is not None and len(sink) - mark > tail:
                del sink[mark:len(sink) - tail]
            if limit is not None and limit <= 0 and not skip and not to_end:
                return received
            now = time.monotonic()
            if now - window_start >= limits.read_timeout:
                if window_bytes < limits.min_rate * (now - window_start):
                    raise ReadTimeout.too_slow(url, window_bytes / (now - window_start),
                                               limits.min_rate, limits.read_timeout)
                window_start, window_bytes = now, 0
    except (asyncio.TimeoutError, TimeoutError) as err:
        if deadline is not None and time.monotonic() >= deadline - 0.01:
            raise ReadTimeout.past_deadline(url, limits.total_timeout, "body") from err
        raise ReadTimeout.stalled(url, limits.read_timeout, "body") from err
