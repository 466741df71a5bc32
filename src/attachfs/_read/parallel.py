"""Large reads as parallel ranged GETs, and many ranges of one object at once.

A cloud caps what one connection carries (about 50-100 MB/s to S3, AWS's performance guide)
and answers each request after tens of milliseconds; a large read goes faster as parts fetched
side by side, as s3transfer and object_store do: at most ``PARTS_IN_FLIGHT`` at once, joined in
order, each a ``PARTS_IN_FLIGHT``-th of the read but no smaller than ``MIN_PART_SIZE`` and no
larger than ``PART_SIZE`` (so a streaming file's 8 MiB window is 8 parts of 1 MiB, a whole
1 GiB object 128 parts of 8 MiB). Unless the link is known slow and the read already has a
version to pin, the first part goes alone: it tells the object's size and version, and every
later part is pinned to that version (``If-Match``, GCS ``ifGenerationMatch``), so an object
replaced mid-read fails with ``IntegrityError`` instead of mixing bytes of two versions.

It adapts, per host: a read made alone measures what one connection carries. Where that is
more than ``FAST_CONNECTION`` (a fast local link, where the client's own CPU is the limit), one
GET per read is faster than several that share the same CPU, and the read is left whole. The
measurement is trusted for ``RECHECK`` seconds, then the next large read measures again. A
pause of the client (a garbage collection, another thread holding the GIL for its switch
interval) can only make a sample slower than the link, never faster: the host keeps the best
rate seen within ``RECHECK``, and a part of a parallel read that alone carried more than
``FAST_CONNECTION`` shows the link fast too (one slow sample on a fast link would otherwise cut
every read into parts for ``RECHECK`` seconds, on a link where parts only share the CPU).

Memory is bounded by the read: its parts are held until they are joined into the one ``bytes``
the read returns (the caller picks the range; a streaming file asks a window at a time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import _fork
from .._limits import (
    FAST_CONNECTION,
    MIN_PART_SIZE,
    PART_SIZE,
    PARTS_IN_FLIGHT,
    RANGES_IN_FLIGHT,
)
from .._net import buffers
from . import transport
from .errors import changed
from .part import Part

__all__ = ["FAST_CONNECTION", "MIN_PART_SIZE", "PART_SIZE", "fast", "measured", "part_size", "read",
           "read_ranges", "slow", "window"]

#: ``one(start, end, version)``: one ranged GET of the object, with its retries.
One = Callable[[int, "int | None", "str | None"], Awaitable[Part]]

#: Reads smaller than this say little about a link's rate: their first byte's wait dominates.
#: No larger than MIN_PART_SIZE, so the first part of a read, made alone, measures the link.
RATE_SAMPLE = MIN_PART_SIZE
#: What the first part of a read measures a host with when it was not measured lately: on a
#: fast link a 1 MiB sample is mostly the request's own overhead and a new connection's start
#: (loopback measured 147 MiB/s for 1 MiB, then 250-690 MiB/s); over a cloud link 4 MiB is
#: still one connection's rate (30 ms first byte, 64 ms of data at 64 MB/s).
MEASURE_SAMPLE = 4 * 2**20
#: Samples that must agree before a host is called slow (one fast sample calls it fast).
SLOW_SAMPLES = 2
#: Seconds a host's measured rate is trusted before a large read measures it again.
RECHECK = 30.0
#: Parts are whole multiples of this.
_ALIGN = 64 * 2**10
#: Hosts remembered at most (the oldest measurement is forgotten first).
MAX_HOSTS = 1024


@dataclass
class _Link:
    rate: float  # bytes per second one connection carried, alone: the best sample
    when: float  # time.monotonic() of the measurement
    samples: int = 1  # how many samples agree on it


_links: dict[Hashable, _Link] = {}
#: Measuring GETs in flight per host (a sample that overlapped another shared the client).
#: A forked child starts with none: the parent's GETs never finish there.
_busy: dict[Hashable, int] = {}
_fork.at_fork(after_in_child=_busy.clear)
#: The most a sample is credited for the measuring GETs it overlapped (a stream's read and its
#: read-ahead).
OVERLAP_CREDIT = 2


def _fast(host: Hashable, now: float) -> bool | None:
    """Whether one connection to ``host`` is fast enough alone (None: not measured lately, or
    slow in only one sample: the first request after the client sat idle runs slowly on some
    machines, so a link is called slow only once ``SLOW_SAMPLES`` samples say so)."""
    link = _links.get(host)
    if link is None or now - link.when > RECHECK:
        return None
    if link.rate >= FAST_CONNECTION:
        return True
    return False if link.samples >= SLOW_SAMPLES else None


def _measured(host: Hashable, nbytes: int, seconds: float, now: float) -> None:
    if nbytes < RATE_SAMPLE or seconds <= 0:
        return
    rate = nbytes / seconds
    samples = 1
    link = _links.pop(host, None)
    if link is not None and now - link.when <= RECHECK:
        rate = max(link.rate, rate)  # a pause only ever makes a sample slower
        samples = link.samples + 1
    if len(_links) >= MAX_HOSTS:
        del _links[next(iter(_links))]
    _links[host] = _Link(rate, now, samples)


def window(host: Hashable, parts: int = PARTS_IN_FLIGHT) -> int:
    """Bytes a sequential reader of ``host`` should have in flight per window to keep its link
    busy: ``parts`` parts of half ``PART_SIZE`` where connections are slow (a part of 1 MiB
    spends most of its time waiting for its first byte; one of 4 MiB on a 64 MB/s connection
    two thirds of it carrying data), one part where one is fast (or not measured yet)."""
    return PART_SIZE // 2 * parts if slow(host) else PART_SIZE


def slow(host: Hashable) -> bool:
    """Whether one connection to ``host`` was measured slow lately: a whole object is then
    read in parts too (else one GET, which measures the host if the object is large)."""
    return _fast(host, time.monotonic()) is False


def fast(host: Hashable) -> bool:
    """Whether one connection to ``host`` was measured fast lately: a read is one GET."""
    return _fast(host, time.monotonic()) is True


def part_size(length: int | None, parts: int = PARTS_IN_FLIGHT) -> int:
    """The parts a read of ``length`` bytes (None: to the object's end) is cut into: enough of
    them to fill ``PARTS_IN_FLIGHT`` connections, none smaller than ``MIN_PART_SIZE`` (a part
    waits for its first byte as long as a large one does) nor larger than ``PART_SIZE``."""
    if length is None:
        return PART_SIZE
    size = -(-length // parts)
    size = -(-size // _ALIGN) * _ALIGN
    return max(MIN_PART_SIZE, min(PART_SIZE, size))


async def measured(one: One, host: Hashable, start: int, end: int | None,
                   version: str | None) -> Part:
    """One GET with no other part of this read beside it: it measures the host. A stream's
    read and its read-ahead are two such GETs at once, and on a link where the client's CPU is
    the limit each carries half of what one would alone: a sample that overlapped another is
    credited with the overlap (at most ``OVERLAP_CREDIT``; a connection a cloud caps carries
    no more alone, and two of them at 64 MB/s still measure slow)."""
    busy = _busy[host] = _busy.get(host, 0) + 1
    began = time.monotonic()
    try:
        part = await one(start, end, version)
    finally:
        busy = max(busy, _busy.get(host, busy))
        left = _busy.get(host, 1) - 1  # another loop's thread may have moved it meanwhile
        if left > 0:
            _busy[host] = left
        else:
            _busy.pop(host, None)
    now = time.monotonic()
    _measured(host, len(part.data) * min(busy, OVERLAP_CREDIT), now - began, now)
    return part


async def read(one: One, host: Hashable, uri: str, start: int, end: int | None,
               version: str | None, parts: int = PARTS_IN_FLIGHT) -> Part:
    """Bytes ``[start, end)`` of the object (``end=None``: to its end), ``start >= 0``, as one
    GET where the host's connections are fast, else as parallel parts (module docstring)."""
    known = _fast(host, time.monotonic())
    if known:
        return await measured(one, host, start, end, version)
    size = part_size(None if end is None else end - start, parts)
    if known is False and version is not None and end is not None:
        # A slow link and a version to pin every part to: all of them at once, each received
        # straight into its place in one buffer (no join of the parts afterwards).
        spans = _spans(start, end, size)
        buffer, view = buffers.new_buffer(end - start)
        slices = [view[s - start:e - start] for s, e in spans]
        got = await _parts(one, spans, version, parts, host, into=slices)
        # Every part received into its own slice (the answer is that very view): the buffer
        # is the window. A part that came otherwise (shorter: the object ends inside it)
        # leaves the buffer unfinished, and the parts are joined.
        whole = all(p.data is v for p, v in zip(got, slices, strict=True))
        joined = _joined(uri, version, start, spans, got, buffer if whole else None)
        if whole:
            buffers.seal(buffer)  # every part is in, and no connection writes into it now
        return joined
    # The first part alone: it tells the size and the version, and measures the link (not
    # measured lately: a larger sample, which a cold start skews less).
    alone = max(size, MEASURE_SAMPLE) if known is None else size
    first_end = start + alone if end is None else min(end, start + alone)
    first = await measured(one, host, start, first_end, version)
    have = start + len(first.data)
    stop = first.size if end is None else min(end, first.size)
    if first.size < 0 or have >= stop:
        return first
    pinned = version or first.version
    if have < first_end:  # the object ended before the size its answer gave: it changed
        raise changed(uri, pinned)
    if uri in transport.RANGE_IGNORED or fast(host):
        spans = [(have, stop)]
        rest = [await one(have, end, pinned)]
    else:
        spans = _spans(have, stop, size)
        rest = await _parts(one, spans, pinned, parts, host)
    return _joined(uri, pinned, start, [(start, first_end), *spans], [first, *rest])


def _spans(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, stop)) for s in range(start, stop, size)]


async def _parts(one: One, spans: list[tuple[int, int]], version: str | None, parts: int,
                 host: Hashable, into: list[memoryview] | None = None) -> list[Part]:
    """Each of ``spans``, ``parts`` at a time, in order. A part that alone carried more than
    ``FAST_CONNECTION`` shows ``host`` fast (parts share the link: none is faster than it).
    With ``into`` (a view per span), each part's answer is received into its view when it is
    exactly that long (``transport.INTO``)."""
    out: list[Part | None] = [None] * len(spans)
    queue = iter(enumerate(spans))

    async def worker() -> None:
        for i, (s, e) in queue:
            began = time.monotonic()
            if into is not None:  # this worker's task only: each task has its own context
                transport.INTO.set(into[i])
            part = out[i] = await one(s, e, version)
            now = time.monotonic()
            if len(part.data) >= FAST_CONNECTION * (now - began):  # (``_measured`` skips
                _measured(host, len(part.data), now - began, now)  # parts too small to tell)

    await _all([worker() for _ in range(min(parts, len(spans)))])
    return [p for p in out if p is not None]


def _joined(uri: str, version: str | None, start: int, spans: list[tuple[int, int]],
            parts: list[Part], buffer: bytes | bytearray | None = None) -> Part:
    """One Part of ``parts``, the answers to consecutive ``spans`` from ``start``. Pinned to one
    version, every part is as long as its span within the object: only a change of the object
    makes one differ (or the sizes they tell). ``buffer``: every part was received into its
    slice of it, so it is the whole range already, with no copy."""
    size = max(p.size for p in parts)
    if size < 0:  # the whole range lies past the object's end
        return dataclasses.replace(parts[0], data=b"", start=start, size=-1)
    for (s, e), p in zip(spans, parts, strict=True):
        if (p.size >= 0 and p.size != size) or len(p.data) != max(0, min(e, size) - s):
            raise changed(uri, version)
    # The first answer's Part, with every part's bytes: what else it says of the object
    # (its version, its metadata) is what every pinned part said.
    if buffer is not None:
        data = buffer if isinstance(buffer, bytes) else bytes(buffer)
    else:
        data = b"".join(p.data for p in parts)
    return dataclasses.replace(parts[0], data=data, start=start, size=size,
                               version=parts[0].version or version)


async def read_ranges(fetch: One, uri: str, ranges: Sequence[tuple[int, int | None]],
                      version: str | None) -> list[Part]:
    """Each of ``ranges`` (``[start, end)``) of one object, at most ``RANGES_IN_FLIGHT`` at
    once, all of one version: ``version``, or (None) whichever version answered, the same for
    every range, else ``IntegrityError``."""
    out: list[Part | None] = [None] * len(ranges)
    queue = iter(enumerate(ranges))

    async def worker() -> None:
        for i, (start, end) in queue:
            out[i] = await fetch(start, end, version)

    await _all([worker() for _ in range(min(RANGES_IN_FLIGHT, len(ranges)))])
    parts = [p for p in out if p is not None]
    seen = {p.version for p in parts if p.version is not None and p.size >= 0}
    if version is None and len(seen) > 1:
        raise changed(uri, next(p.version for p in parts if p.version is not None))
    return parts


async def _all(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run ``coros`` together; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
