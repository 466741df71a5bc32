"""The read path: one ranged GET per call, for each backend, returning the bytes together with
what the response says about the object (its size and version).

A read never starts with a HEAD: the first ranged GET learns the size (Content-Range) and the
version (S3/Azure ETag, GCS generation); later ranges carry that version as a precondition, so
an object replaced mid-read fails with ``IntegrityError`` instead of mixing bytes.

One reader per backend (``s3``, ``gcs``, ``azure``, ``http``) builds its request; S3, GCS and
Azure send it through one pool (``transport``), plain http(s) through the network guard. Every
reader's failures go through one table (``errors``) and one retry loop (``retry``) with one
budget, the config's ``Limits``; throttling answers slow down every read of the process to
that bucket, account or host (``throttle``). Object keys are sent as whole keys, never as
paths to re-parse: a key may contain ``?``, ``#``, ``%``, ``//`` or end in ``/``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._limits import Limits
from .._redact import Redacted
from . import azure, gcs, http, parallel, retry, s3, throttle
from .errors import Unsatisfiable, guarded, reraise, transient, translate
from .part import Part

if TYPE_CHECKING:
    from .._config import Config
    from .._rules import Route

__all__ = ["Part", "any_loop", "guarded", "host", "read", "read_ranges", "reraise", "translate",
           "window"]

Reader = Callable[[Any, "Route", int, "int | None", "str | None", "Config | None", Limits,
                   "str | None"], Awaitable[Part]]

_READERS: dict[str, Reader] = {"s3": s3.read, "gcs": gcs.read, "azure": azure.read}


async def read(client: Any, route: Route, start: int = 0, end: int | None = None, *,
               version: str | None = None, config: Config | None = None,
               if_none_match: str | None = None) -> Part:
    """Bytes ``[start, end)`` of the object ``route`` names (``end=None``: to its end).

    ``client`` is the inner filesystem of the route's backend (the Azure SDK client of ambient
    reads, the guarded session of plain http). ``start < 0`` asks for the last ``-start`` bytes
    (a suffix range; not on Azure). With ``version``, the object must still be that version,
    else ``IntegrityError``. With ``if_none_match`` (a cached version), an unchanged object
    answers ``not_modified`` and no bytes (plain http reads ignore it and fetch again).
    Transient failures are retried within the config's ``Limits``. A large range of a cloud
    object is fetched as parallel ranged GETs where the link gains from it (``parallel``),
    every part pinned to the version of the first.
    """
    if end is not None and end <= start:
        return Part(b"", start, -1, version)
    limits = Limits.from_config(config)
    if route.backend == "http":  # resumed and retried attempt by attempt, through the guard
        return await http.read(client, route, start, end, version, config, limits,
                               if_none_match)
    one = _One(_READERS[route.backend], client, route, config, limits, if_none_match)
    if if_none_match is None and start >= 0 and limits.parts_in_flight > 1:
        link = host(route, config)
        # Worth parts only when there are at least two whole ones: a read just over a part
        # would otherwise cost a second request for its last few bytes.
        if (end - start >= 2 * parallel.MIN_PART_SIZE) if end is not None else parallel.slow(link):
            return await parallel.read(one, link, route.uri, start, end, version,
                                       limits.parts_in_flight)
        return await parallel.measured(one, link, start, end, version)
    return await one(start, end, version)


class _One:
    """``one(start, end, version)``: one GET of a read, retried within its budget. An object
    with slots rather than a closure per read: a batch of small objects keeps thousands of
    reads in flight, and every cell and function a read makes is more for the garbage
    collector to walk."""

    __slots__ = ("client", "config", "if_none_match", "limits", "reader", "route")

    def __init__(self, reader: Reader, client: Any, route: Route, config: Config | None,
                 limits: Limits, if_none_match: str | None) -> None:
        self.reader, self.client, self.route = reader, client, route
        self.config, self.limits, self.if_none_match = config, limits, if_none_match

    async def __call__(self, start: int, end: int | None, version: str | None) -> Part:
        route, limits = self.route, self.limits
        loc = route.location
        now = retry._now()
        limiter = throttle.limiter(throttle.key(route.backend, loc.bucket, loc.account), now)
        try:
            return await retry.run(_Attempt(self, start, end, version), what=_Reading(route.uri),
                                   limits=limits, deadline=now + limits.total_timeout,
                                   classify=transient, throttle=limiter)
        except Unsatisfiable:
            return http.unsatisfiable(start, version)


class _Attempt:
    """``attempt(n)`` of ``retry.run``: the reader's request for one range."""

    __slots__ = ("end", "one", "start", "version")

    def __init__(self, one: _One, start: int, end: int | None, version: str | None) -> None:
        self.one, self.start, self.end, self.version = one, start, end, version

    def __call__(self, n: int) -> Awaitable[Part]:
        one = self.one
        return one.reader(one.client, one.route, self.start, self.end, self.version, one.config,
                          one.limits, one.if_none_match)


class _Reading(Redacted):
    """``reading <uri>``: what the retry loop names a read in its messages and log records."""

    __slots__ = ()

    def __init__(self, uri: str) -> None:
        super().__init__(uri, "reading ")


async def read_ranges(client: Any, route: Route, ranges: Sequence[tuple[int, int | None]], *,
                      version: str | None = None, config: Config | None = None) -> list[Part]:
    """Bytes of each ``(start, end)`` of ``ranges`` of the object ``route`` names, fetched
    concurrently (``RANGES_IN_FLIGHT`` at a time), each as ``read`` reads it, all of one
    version of the object: ``version``, or (None) the one that answered, the same for every
    range, else ``IntegrityError``. Parts come back in the order of ``ranges``."""
    async def fetch(start: int, end: int | None, version: str | None) -> Part:
        return await read(client, route, start, end, version=version, config=config)

    return await parallel.read_ranges(fetch, route.uri, ranges, version)


def any_loop(route: Route) -> bool:
    """Whether ``read`` of ``route`` may run on any event loop, not only fsspec's: S3, GCS and
    Azure requests that attachfs signs go through the pool of the loop they run on, while plain
    http's guarded session and the Azure SDK client of a shared key belong to fsspec's loop."""
    return route.backend in ("s3", "gcs") or (route.backend == "azure"
                                              and route.grant.kind != "ambient")


def window(route: Route, config: Config | None = None) -> int:
    """Bytes a sequential reader of ``route`` should have in flight per window to keep its
    link busy (``parallel.window``): larger where the host's connections were measured slow,
    as many parts as the config's ``parts_in_flight``."""
    if route.backend == "http":
        return parallel.PART_SIZE
    return parallel.window(host(route, config), Limits.from_config(config).parts_in_flight)


def host(route: Route, config: Config | None) -> tuple[str | None, ...]:
    """What a link's speed is measured for: the service endpoint, bucket and proxy."""
    loc = route.location
    endpoint = None
    if config is not None:
        platform = config.platform
        endpoint = {"s3": platform.aws.endpoint_url, "gcs": platform.gcp.endpoint_url,
                    "azure": platform.azure.endpoint_url}.get(route.backend)
    return (route.backend, endpoint, loc.bucket, loc.account, loc.region, route.proxy)
