"""One GET of a cloud object over the shared pool, and what its answer says.

S3, GCS and Azure reads each build their request (URL, headers, credentials) and hand it here.
The answer's body goes through the one body reader (``body.read_body``), so a server that stops
sending, or sends slower than the minimum rate, ends in ``ReadTimeout`` naming the phase, never
a hung worker: the same limits as plain http(s) reads. S3 is never sent through the egress
proxy; GCS and Azure go through ``route.proxy`` (the Route decides).

A 200 in answer to a ranged GET is the whole object from its first byte, not the range
(RFC 9110 section 14.2: a server may ignore ``Range``). Real S3 answers a suffix range of an
empty object that way; GCS does for every range of a transcoded object
(https://cloud.google.com/storage/docs/transcoding); S3-compatible stores and caching proxies
may for any range. The Rust ``object_store`` crate refuses such an answer (``NotPartial``,
``src/client/get.rs``); attachfs accepts it, as its plain-http reader does: the object it
carries is still the one asked for (its version is checked like any other), so refusing would
make readable objects unreadable behind such a server, and every empty S3 object an error for a
reader that asks the size first. The body is read while it streams: the bytes before the range
are skipped and the read stops once the range is covered, so memory is bounded by the range,
not the object. Only when the answer does not announce its length is the rest of it read (and
counted, not kept) to learn the object's size.

A request without a proxy goes over a direct connection (``_net/wire``): a 2xx body of
announced length (the common answer, but for a 200 to a ranged GET) is received straight into
the ``bytes`` returned; any other body is read through the same body reader as aiohttp's. A
redirect to follow, and every request through a proxy, go through aiohttp's session. Neither
decompresses (aiohttp's ``auto_decompress=False``): the bytes returned are the bytes as
stored, and ``Content-Length`` counts them.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import yarl

from .._errors import ReadTimeout
from .._limits import Limits
from .._net import pool, wire
from .._redact import Redacted
from .body import Chunks, read_body
from .errors import changed, check_body
from .part import META_HEADERS, ContentRange, Part, ranged

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy

    from .._rules import Route

__all__ = ["INTO", "RANGE_IGNORED", "Answer", "answered", "exchange", "object_url"]

#: How much of an error answer's body is kept: its error document, never a whole object.
ERROR_BODY_BYTES = 64 * 1024
#: Objects (URIs) whose server answered a ranged GET with the whole object: a large read of
#: one is not split into parts, each of which would be sent the object again from byte 0.
RANGE_IGNORED: dict[str, None] = {}
_MAX_IGNORED = 1024
#: Set (in one part's task) to the slice of a larger buffer that part's answer belongs in: a
#: direct answer of exactly that length is received into it, and its Answer's body is that
#: view; any other answer gets a buffer of its own.
INTO: contextvars.ContextVar[memoryview | None] = contextvars.ContextVar("attachfs_into",
                                                                         default=None)


@dataclass(frozen=True)
class Answer:
    """One answer: ``body`` is the asked range of the object for a 200/206 (whatever the server
    sent), the start of the error document otherwise. ``size`` is the object's size when the
    answer tells it (None: it does not, or it is not the object)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    size: int | None = None


def object_url(base: str, path: str, query: str = "") -> yarl.URL:
    """``base`` (a scheme, host and perhaps a path; a trailing ``/`` is not part of it)
    followed by ``path`` and ``?query``, both already encoded and kept byte for byte. Without
    a query the base is parsed once and only the path is new (parsing a whole URL costs more
    than the rest of building the request); a query goes through the whole parse (yarl's
    ``with_query`` would encode it again)."""
    if query:
        return yarl.URL(f"{base.rstrip('/')}{path}?{query}", encoded=True)
    parsed = _parsed(base)
    return parsed.with_path(parsed.raw_path.rstrip("/") + path, encoded=True)


@functools.lru_cache(maxsize=256)
def _parsed(base: str) -> yarl.URL:
    return yarl.URL(base, encoded=True)


async def exchange(route: Route, limits: Limits, url: yarl.URL, headers: dict[str, str], *,
                   start: int = 0, end: int | None = None, redirects: bool = True,
                   method: str = "GET") -> Answer:
    """One GET over the shared pool, asking for bytes ``[start, end)`` (``start < 0``: the last
    ``-start`` bytes); the caller put the matching ``Range`` header in ``headers``. (``method``
    "HEAD": the answer's headers only.)"""
    shown = Redacted(route.uri)
    if route.proxy is None:
        answer = await _direct(route, limits, url, headers, start, end, redirects, method, shown)
        if answer is not None:
            return answer
    try:
        async with pool.session().request(method, url, headers=headers, proxy=route.proxy,
                                          allow_redirects=redirects,
                                          timeout=_timeout(limits)) as resp:
            return await _answer(resp, route, limits, start, end, shown)
    except aiohttp.ConnectionTimeoutError as err:
        raise ReadTimeout.connecting(shown(), limits.connect_timeout) from err
    except (asyncio.TimeoutError, TimeoutError) as err:  # waiting for the response headers
        raise ReadTimeout.stalled(shown(), limits.read_timeout, "response") from err


async def _direct(route: Route, limits: Limits, url: yarl.URL, headers: dict[str, str],
                  start: int, end: int | None, redirects: bool, method: str,
                  shown: Callable[[], str]) -> Answer | None:
    """The exchange over a direct connection (``wire``); None: the answer is a redirect to
    follow, which aiohttp's session follows (asking again)."""
    try:
        # All of a body is kept for a 2xx, except a 200 that ignored the range asked for (the
        # whole object: only the range is kept, below).
        whole = _WHOLE if ranged(start, end) else _SUCCESS
        into = INTO.get()
        if into is not None and (end is None or start < 0 or len(into) != end - start):
            into = None  # only the request for exactly that slice's bytes goes there
        resp = await pool.direct().request(method, url, headers,
                                           connect_timeout=limits.connect_timeout,
                                           read_timeout=limits.read_timeout,
                                           min_rate=limits.min_rate, in_place=whole,
                                           into=into)
        async with resp:
            if redirects and resp.status in _REDIRECTS:
                return None
            if resp.in_place:  # the common answer: a body of known length, in place
                # A view of the INTO buffer when it was received there: only a 2xx is, and
                # only parallel.read sets INTO, which makes its parts one buffer again; the
                # readers on the way pass a 2xx body on untouched.
                body = cast(bytes, await resp.read())
                size = len(body) if resp.status == 200 else _announced(resp.headers)
                return Answer(resp.status, resp.headers, body, size)
            return await _answer(resp, route, limits, start, end, shown)
    except aiohttp.ConnectionTimeoutError as err:
        raise ReadTimeout.connecting(shown(), limits.connect_timeout) from err
    except wire.Stalled as err:
        if err.rate is not None:
            raise ReadTimeout.too_slow(shown(), err.rate, limits.min_rate,
                                       limits.read_timeout) from None
        raise ReadTimeout.stalled(shown(), limits.read_timeout, err.phase) from None


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _SUCCESS(status: int) -> bool:
    return 200 <= status < 300


def _WHOLE(status: int) -> bool:
    return 200 < status < 300


def _announced(headers: CIMultiDictProxy[str]) -> int | None:
    announced = ContentRange.parse(headers.get("Content-Range"))
    return announced.size if announced is not None else None


async def _answer(resp: Any, route: Route, limits: Limits, start: int, end: int | None,
                  shown: Callable[[], str]) -> Answer:
    """The Answer of ``resp`` (aiohttp's or ``wire``'s), its body read as the status says."""
    body = Chunks()
    size = None
    if resp.status == 200 and ranged(start, end):
        _ignored_range(route.uri)
        size = await _whole_object(resp, body, start, end, limits, shown)
    elif 200 <= resp.status < 300:
        received = await read_body(resp, body, limits=limits, url=shown)
        if resp.status == 200:  # the whole object was asked for, and sent
            size = received
        else:
            size = _announced(resp.headers)
    else:  # an error document (or nothing): its first bytes say enough
        await read_body(resp, body, limits=limits, url=shown, limit=ERROR_BODY_BYTES)
    return Answer(resp.status, resp.headers, body.take(), size)


def _ignored_range(uri: str) -> None:
    RANGE_IGNORED.pop(uri, None)
    if len(RANGE_IGNORED) >= _MAX_IGNORED:
        del RANGE_IGNORED[next(iter(RANGE_IGNORED))]
    RANGE_IGNORED[uri] = None


@functools.lru_cache(maxsize=64)
def _timeout(limits: Limits) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=limits.connect_timeout,
                                 sock_read=limits.read_timeout)


async def _whole_object(resp: Any, sink: Chunks, start: int,
                        end: int | None, limits: Limits, shown: Callable[[], str]) -> int:
    """Keep bytes ``[start, end)`` of a 200 that carries the whole object from byte 0; return
    the object's size (see the module docstring)."""
    length = resp.headers.get("Content-Length")
    size = int(length) if length is not None and length.isdigit() else None
    if start < 0:  # a suffix: the last -start bytes
        if size is not None:
            await read_body(resp, sink, limits=limits, url=shown, skip=max(size + start, 0))
            return size
        return await read_body(resp, sink, limits=limits, url=shown, tail=-start)
    limit = None if end is None else end - start
    received = await read_body(resp, sink, limits=limits, url=shown, skip=start, limit=limit,
                               to_end=size is None)
    return received if size is None else size


def answered(route: Route, start: int, version: str | None, if_none_match: str | None,
             answer: Answer, version_header: str) -> Part:
    """The Part a 200/206/304 answer carries, its version checked against ``version``.

    The precondition is the server's to enforce; its answer is checked here too, so a server
    that ignores it (some emulators and S3-compatible stores do) cannot mix versions."""
    if answer.status == 304:
        return Part(b"", start, -1, if_none_match, not_modified=True)
    answered_version = answer.headers.get(version_header)
    if version and answered_version and answered_version != version:
        raise changed(route.uri, version)
    check_body(answer.status, answer.headers, answer.body)
    size = answer.size if answer.size is not None else start + len(answer.body)
    get = answer.headers.get
    meta = {name: value for name in META_HEADERS if (value := get(name)) is not None}
    return Part(answer.body, start, size, answered_version, meta=meta)
