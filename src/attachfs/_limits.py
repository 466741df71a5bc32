"""Every default number of attachfs, in one place (pure).

``Limits`` bounds each read, on every backend: timeouts, the retry budget (a time window,
with a cap on attempts), and the size cap of plain http(s) objects. A config's ``[limits]``
table overrides any field (``attachfs.load_config`` validates it); ``Limits.from_config`` is
the only reader of it. The other constants are the read path's block sizes and the caches'
default sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["BLOCK_CACHE_BYTES", "CACHE_BLOCK", "CACHE_MAX_BYTES", "FAST_CONNECTION",
           "FINISH_ON_CLOSE", "FIRST_BLOCK", "HEAD_FETCH", "INFO_TTL", "LIMIT_FIELDS", "Limits",
           "MAX_READAHEAD", "MIN_FETCH", "MIN_PART_SIZE", "PARTS_IN_FLIGHT", "PART_SIZE",
           "POOL_CONNECTIONS", "POOL_CONNECTIONS_PER_HOST", "POOL_READ_BUFFER",
           "PREFETCH_CONCURRENCY", "RANGES_IN_FLIGHT", "SPECULATION_ALLOWANCE", "TAIL",
           "bytes_setting"]

#: The disk cache's size bound when a config or ``cache=`` names only a directory.
CACHE_MAX_BYTES = 10 * 2**30

#: What the first read of a file from its start fetches (an attachment that fits is one GET).
FIRST_BLOCK = 1 * 2**20
#: Formerly the least a read after a seek fetched; reads now fetch what the access pattern
#: shows (``_pattern``), and ``cache_options={"min_fetch": ...}`` sets a floor if wanted.
MIN_FETCH = 64 * 2**10
#: How far sequential read-ahead grows.
MAX_READAHEAD = 8 * 2**20
#: The suffix fetched when the size is asked first (parquet and zip footers live there).
TAIL = 64 * 2**10
#: What the first read of a new file from offset 0 fetches at least (format headers live there).
HEAD_FETCH = 16 * 2**10
#: Bytes an open file may fetch ahead of its reads before any read asked for something.
SPECULATION_ALLOWANCE = 16 * 2**10
#: The shared in-process block cache's bound (``ATTACHFS_BLOCK_CACHE_BYTES`` overrides it).
BLOCK_CACHE_BYTES = 128 * 2**20
#: Seconds an ``info()`` answer stands for the same object: a repeated ``info`` and an open
#: that follows it use it (pandas and pyarrow ask ``info`` several times, then open).
INFO_TTL = 1.0
#: Read-ahead still in flight when a file closes, and no larger, is let finish into the block
#: cache (its connection goes back to the pool); a larger one is cancelled.
FINISH_ON_CLOSE = 2 * 2**20
#: Column chunks of a parquet file fetched concurrently ahead of a scan, at most.
PREFETCH_CONCURRENCY = 16
#: The disk cache keeps an object larger than this as aligned blocks of this size.
CACHE_BLOCK = 1 * 2**20

#: Parallel ranged GETs of a large read (s3transfer's defaults: 8 MiB parts, ~10 at once):
#: the size of one part, and how many are in flight at most for one read.
PART_SIZE = 8 * 2**20
PARTS_IN_FLIGHT = 8
#: The smallest part a read is cut into (a smaller one would wait for its first byte about as
#: long as it takes to arrive): an 8 MiB read on a slow link is 8 parts of 1 MiB.
MIN_PART_SIZE = 2**20
#: A connection that carries more than this (bytes/s) is not what caps a read, the client's
#: CPU is: more connections would only share it, so such a host gets one GET per read.
FAST_CONNECTION = 200 * 2**20
#: Ranges of one object fetched at once by ``read_ranges`` (column chunks, zip members).
RANGES_IN_FLIGHT = 16

#: Connections of the shared pool, in all and per host.
POOL_CONNECTIONS = 256
POOL_CONNECTIONS_PER_HOST = 128
#: Bytes one pooled connection buffers before it stops reading its socket until the reader
#: catches up (aiohttp's ``read_bufsize``; its 64 KiB default pauses and resumes the socket
#: about 128 times per 8 MiB and halved a large read's throughput).
POOL_READ_BUFFER = 2 * 2**20


@dataclass(frozen=True)
class Limits:
    """Timeouts (seconds), the retry budget and the size cap of one read.

    One read is one call of the read path for one range of one object (a whole ``cat``, or one
    window of an open file), with all its attempts, redirects included.
    """

    #: TCP and TLS handshake.
    connect_timeout: float = 10.0
    #: No byte at all for this long, while waiting for the headers or the body: a stall.
    read_timeout: float = 30.0
    #: Bytes per second the body must average over each ``read_timeout`` window.
    min_rate: float = 1024.0
    #: The whole read, every attempt and every wait between attempts included.
    total_timeout: float = 600.0
    #: Plain http(s) objects larger than this are refused before their body is read (the URL
    #: is customer-submitted; the clouds bound their own objects).
    max_object_bytes: int = 5 * 2**30
    #: The retry budget, in time: transient failures are retried until this many seconds have
    #: passed since the first of them (an attempt that got some bytes starts the count again).
    #: Waits are at most ``backoff_cap`` apart and the last attempt is made as the window
    #: ends, so an outage shorter than the window is ridden out when its attempts fail fast
    #: (a refused connection, a 503; a stalled attempt takes ``read_timeout`` itself, so the
    #: default leaves a whole stall plus half a minute of other failures).
    retry_window: float = 60.0
    #: Attempts within one window, the first included: a cap on top of the time budget, high
    #: enough that full-jitter waits (half of ``backoff_cap`` on average, once grown)
    #: practically never reach it before the window ends.
    max_attempts: int = 50
    #: Backoff between attempts: full jitter over ``min(backoff_cap, backoff_base * 2**n)``.
    backoff_base: float = 0.25
    backoff_cap: float = 5.0

    #: Ranged GETs one large read may have in flight where a connection is slow (1: every read
    #: is one GET, whatever the link).
    parts_in_flight: int = PARTS_IN_FLIGHT

    @classmethod
    def from_config(cls, config: Any) -> Limits:
        """The limits of ``config`` (a ``Config``, or None for ambient mode)."""
        limits = getattr(config, "limits", None)
        return limits if isinstance(limits, Limits) else DEFAULT

    def with_values(self, **values: Any) -> Limits:
        """A copy with some fields changed."""
        return replace(self, **values)


DEFAULT = Limits()

#: The ``[limits]`` keys, their types and their allowed ranges (checked by the config loader).
LIMIT_FIELDS: dict[str, tuple[type, float, float]] = {
    "connect_timeout": (float, 0.001, 3600.0),
    "read_timeout": (float, 0.001, 3600.0),
    "min_rate": (float, 0.0, 1e12),
    "total_timeout": (float, 0.001, 7 * 86400.0),
    "max_object_bytes": (int, 1, 2**62),
    "retry_window": (float, 0.0, 7 * 86400.0),
    "max_attempts": (int, 1, 1000),
    "parts_in_flight": (int, 1, 64),
    "backoff_base": (float, 0.0, 3600.0),
    "backoff_cap": (float, 0.0, 3600.0),
}
assert set(LIMIT_FIELDS) == {f.name for f in fields(Limits)}


def bytes_setting(name: str, value: str | None, default: int, zero: str) -> int:
    """A bound in bytes that the environment variable ``name`` sets (its ``value``; unset or
    blank: ``default``); ``zero`` says what 0 means, for the error a bad value gets."""
    value = (value or "").strip()
    if not value:
        return default
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of bytes (0: {zero}), not {value!r}") from None
    if n < 0:
        raise ValueError(f"{name} must be 0 or more bytes, not {n}")
    return n
