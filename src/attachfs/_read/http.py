"""The plain http(s) reader: every request through the network guard, resumed and retried.

The URL is fetched exactly as given (a signed URL's query is its credential, and re-quoting it
would change what it signed). Every connection is checked by the guard (``_net.guard``); the
session is the guarded one of the ``GuardedHTTPFileSystem`` the backends keep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import aiohttp
import yarl

from .._errors import ReadTimeout, TooLarge
from .._redact import redact
from . import retry, throttle
from .body import read_body
from .errors import changed, describe, raise_for_status, transient
from .gcs import accept_encoding
from .part import ContentRange, Part, range_header
from .retry import Retry

if TYPE_CHECKING:
    from .._config import Config
    from .._limits import Limits
    from .._net.guard import Guard
    from .._rules import Route

__all__ = ["http_part", "read", "unsatisfiable"]


async def read(client: Any, route: Route, start: int, end: int | None, version: str | None,
               config: Config | None, limits: Limits, if_none_match: str | None) -> Part:
    """``client`` is the guarded HTTPFileSystem: its session checks every connection, and
    ``client.guard`` carries the redirect rules and limits. ``if_none_match`` is ignored: plain
    http(s) reads are fetched again."""
    return await http_part(client.guard, await client.set_session(), route.location.url or "",
                           start, end, version)


async def http_part(guard: Guard, session: aiohttp.ClientSession, url: str, start: int,
                    end: int | None, version: str | None) -> Part:
    """Bytes ``[start, end)`` of a plain http(s) ``url`` through ``guard``, retried."""
    return await _HttpRange(guard, session, url, start, end, version).read()


def unsatisfiable(start: int, version: str | None) -> Part:
    """The Part of a 416: the range starts at or past the end; from offset 0 that is an empty
    object."""
    return Part(b"", start, 0 if start <= 0 else -1, version)


class _HttpRange:
    """One read of bytes ``[start, end)`` of a plain http(s) URL, whatever the network does
    (``start < 0``: the last ``-start`` bytes, a suffix range).

    Each attempt asks for what is still missing. A connection that breaks mid-body (or a body
    shorter than its ``Content-Length``/``Content-Range``) is resumed with a ``Range`` from the
    first missing byte and ``If-Match`` carrying the ETag of the first answer, so the bytes
    returned are those of one version of the object; without a strong ETag to pin, the read
    starts over instead. 5xx, 429 (``Retry-After`` honoured) and 408 are retried;
    400/401/403/404/412 never are. A 2xx body is the object, whatever it contains.
    """

    def __init__(self, guard: Guard, session: aiohttp.ClientSession, url: str, start: int,
                 end: int | None, version: str | None):
        self.guard, self.session = guard, session
        self.limits = guard.limits
        # Messages name the URL redacted: a signed URL's query is its credential.
        self.uri = url
        self.shown = redact(url)
        self.start, self.end = start, end
        # Where ``buf`` begins in the object: a suffix learns it from the first answer.
        self.origin: int | None = start if start >= 0 else None
        self.version = version      # the caller's pin (a later block of an open file)
        self.pinned = version       # what resumes are pinned to
        self.etag: str | None = None
        self.size: int | None = None
        self.buf = bytearray()
        self.empty = False          # 416: nothing at or past ``start``
        # encoded=True: send the URL exactly as given. Re-quoting it (aiohttp's default)
        # changes what a signed URL signed, and turns a key's %3D into "=".
        self.url = yarl.URL(url, encoded=True)
        self.deadline = retry._now() + guard.limits.total_timeout

    async def read(self) -> Part:
        url = self.url
        where = throttle.key("http", host=f"{url.scheme}://{url.raw_host}:{url.port}")
        limiter = throttle.limiter(where, retry._now())
        await retry.run(self._attempt, what=f"reading {self.shown}", limits=self.limits,
                        deadline=self.deadline, classify=transient, throttle=limiter)
        if self.empty:
            return unsatisfiable(self.start, self.version)
        size = self.size if self.size is not None else (self.origin or 0) + len(self.buf)
        # A weak ETag names a version no If-Match can pin (RFC 9110 compares strongly there):
        # the part names no version, so nothing later is pinned to it.
        version = self.etag if self.etag and not self.etag.startswith("W/") else None
        return Part(bytes(self.buf), self.start, size, version)

    def _missing(self) -> int | None:
        """Bytes still to read (None: up to the end of the object, size not known yet)."""
        if self.origin is None:
            return -self.start if self.size is None else min(-self.start, self.size)
        stop = self.end if self.size is None else min(self.end or self.size, self.size)
        return None if stop is None else max(stop - self.origin - len(self.buf), 0)

    async def _attempt(self, n: int) -> None:
        missing = self._missing()
        if n > 1 and missing == 0:
            return
        # A suffix asks for the tail until an answer says where the tail starts; then, as any
        # resume, for the first missing byte.
        pos = self.start if self.origin is None else self.origin + len(self.buf)
        # Byte offsets of the object as stored (GCS: gzip, see _read.gcs).
        headers = {"Accept-Encoding": accept_encoding(self.url)}
        if pos != 0 or self.end is not None:
            headers["Range"] = range_header(pos, self.end)
        if self.pinned:
            headers["If-Match"] = self.pinned
        where = self.shown
        async with self.guard.open(self.session, self.url, headers=headers,
                                   deadline=self.deadline) as reply:
            resp = reply.resp
            status = resp.status
            if status == 416:
                self.empty = not self.buf
                return
            if status not in (200, 206):
                self._refuse_status(status, resp)
            etag = resp.headers.get("ETag")
            if self.pinned and etag and etag != self.pinned:
                raise changed(self.uri, self.pinned)  # the server ignored If-Match
            self.etag = self.etag or etag
            if not self.pinned and etag and not etag.startswith("W/"):
                self.pinned = etag
            skip, expected = self._framing(resp, status, pos, where)
            # A suffix still without a start (a 200 of unannounced length): read it all, keep
            # the tail.
            limit = None if self.origin is None else self._missing()
            cap = self.limits.max_object_bytes
            if self.size is not None and self.size > cap:
                raise TooLarge(f"{where} is {self.size} bytes, over the {cap}-byte cap for one "
                               "object", url=where, size=self.size, limit=cap)
            mark = len(self.buf)
            try:
                received = await read_body(
                    reply.resp, self.buf, limits=self.limits, url=where,
                    deadline=self.deadline, skip=skip,
                    limit=cap + 1 - pos if limit is None else limit)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError,
                    ConnectionError, ReadTimeout) as err:
                if isinstance(err, ReadTimeout) and err.phase == "deadline":
                    raise
                got = len(self.buf) - mark
                self._keep_or_restart()
                progress = self._progress(got)
                if isinstance(err, ReadTimeout):
                    raise Retry(f"{err.detail}, after {got} bytes of the body",
                                progress=progress) from err
                raise Retry(f"the connection broke after {got} bytes of the body "
                            f"({describe(err)})", progress=progress) from err
            if (self.origin or 0) + len(self.buf) > cap:
                raise TooLarge(f"{where} is over the {cap}-byte cap for one object",
                               url=where, limit=cap)
            got = len(self.buf) - mark
            finished = limit is not None and got >= limit
            if status == 200 and self.size is None and not finished:
                self.size = received  # the whole object, read to its end
                if self.origin is None:  # a suffix of an object of unannounced length
                    self.origin = max(received + self.start, 0)
                    del self.buf[:len(self.buf) - (received - self.origin)]
            if not finished and expected is not None and received < expected:
                self._keep_or_restart()
                raise Retry(f"short body: {received} of the {expected} bytes announced",
                            progress=self._progress(got))

    def _refuse_status(self, status: int, resp: aiohttp.ClientResponse) -> NoReturn:
        raise_for_status(self.uri, "http", status, resp.reason or None, self.pinned,
                         resp.headers)

    def _framing(self, resp: aiohttp.ClientResponse, status: int, pos: int,
                 where: str) -> tuple[int, int | None]:
        """(bytes to skip, body bytes announced) of a 200/206; learns the object's size."""
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
        length = resp.headers.get("Content-Length")
        announced = int(length) if length and length.isdigit() and not encoded else None
        if status == 200:
            # The whole object from byte 0 (the server ignored Range, or none was sent).
            if announced is not None:
                self.size = announced
                if self.origin is None:
                    self.origin = pos = max(announced + self.start, 0)
            return max(pos, 0), announced
        answered = ContentRange.parse(resp.headers.get("Content-Range"))
        if answered is not None and self.origin is None:
            self.origin = pos = answered.first  # where the suffix starts
        if answered is None or answered.first != pos:
            raise OSError(f"{where}: asked for bytes from {pos}, the server answered "
                          f"Content-Range {resp.headers.get('Content-Range')!r}")
        if answered.size is not None:
            self.size = answered.size
        # The range is what was asked for: a Content-Length that says less does not excuse a
        # short body.
        return 0, answered.last - pos + 1

    def _progress(self, got: int) -> bool:
        """Whether a failed attempt that kept ``got`` bytes toward a resume got somewhere: at
        least what the minimum rate asks of one read-timeout window (so a drip, or a stall after
        a few bytes, is not progress). Progress starts the retry budget again."""
        limits = self.limits
        return bool(self.pinned) and got > 0 and got >= limits.min_rate * limits.read_timeout

    def _keep_or_restart(self) -> None:
        # Resuming is only safe pinned to a version; otherwise the next attempt starts over.
        if not self.pinned:
            self.buf.clear()
