"""An S3-style object server (path-style ``GET /{bucket}/{key}``) that counts what a client does
to it: requests, requests in flight at once, connections opened and connections the client
closed. For the read path's promises about parallel parts, batches and the pool, asserted as
counts.

It answers as S3 does for what a read uses (https://docs.aws.amazon.com/AmazonS3/latest/API/
API_GetObject.html): ``Range`` (206 with ``Content-Range``; ``bytes=a-b``, ``a-``, ``-n``; 416
past the end), ``ETag``, ``If-Match`` (412 ``PreconditionFailed``), 404 ``NoSuchKey``. It checks
no signature (tests/fakes/strict_s3.py does). ``delay`` holds every answer that long before its
headers, as a cloud's first byte comes after tens of milliseconds, so that concurrent requests
are in flight together and can be counted; nothing asserts a time. ``replace_after(n, data)``
swaps an object for a new version once ``n`` GETs of it were answered (an object replaced
mid-read). ``ignore_if_match`` makes it answer whatever version it holds, as some S3-compatible
stores do: the client must still notice the change. ``set_cookie`` adds a ``Set-Cookie`` to
every answer (requests are recorded with their headers: ``requests``).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from attachfs.testing.servers import AppServer

__all__ = ["CountingStore", "Get"]


@dataclass(frozen=True)
class Get:
    """One GET as received: its object, ``Range`` and ``If-Match`` headers, and the status."""

    key: str
    range: str | None
    if_match: str | None
    status: int


@dataclass
class _Object:
    data: bytes
    etag: str = ""
    swaps: list[tuple[int, bytes]] = field(default_factory=list)
    gets: int = 0

    def __post_init__(self) -> None:
        self.etag = self.etag or f'"{hashlib.md5(self.data).hexdigest()}"'


class CountingStore(AppServer):
    """The fake (module docstring). Thread-safe counters; ``reset_counts()`` zeroes them."""

    def __init__(self) -> None:
        super().__init__()
        self.delay = 0.0
        self.ignore_if_match = False
        self.set_cookie: str | None = None  # a Set-Cookie every answer carries
        self._objects: dict[str, _Object] = {}
        self._count_lock = threading.Lock()
        self.gets: list[Get] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._transports: dict[int, Any] = {}
        self._opened = 0
        self._closed_before: set[int] = set()

    # -- objects ----------------------------------------------------------------------------

    def put(self, bucket: str, key: str, data: bytes) -> str:
        """Store ``data``; returns its ``s3://`` URI."""
        self._objects[f"{bucket}/{key}"] = _Object(data)
        return f"s3://{bucket}/{key}"

    def replace_after(self, bucket: str, key: str, gets: int, data: bytes) -> None:
        """Once ``gets`` GETs of the object have been answered, it becomes ``data``."""
        self._objects[f"{bucket}/{key}"].swaps.append((gets, data))

    def etag(self, bucket: str, key: str) -> str:
        return self._objects[f"{bucket}/{key}"].etag

    # -- counts -----------------------------------------------------------------------------

    def reset_counts(self) -> None:
        with self._count_lock:
            self.gets.clear()
            self.max_in_flight = self.in_flight
            self._opened = 0
            self._closed_before = {k for k, t in self._transports.items() if t.is_closing()}

    @property
    def opened(self) -> int:
        """Connections opened since the last ``reset_counts``."""
        return self._opened

    def open_connections(self) -> int:
        """Connections still open (the client's pool, as the server sees it)."""
        with self._count_lock:
            return sum(1 for t in self._transports.values() if not t.is_closing())

    def closed_connections(self) -> int:
        """Connections closed since the last ``reset_counts`` (by the client: this server
        keeps them open)."""
        with self._count_lock:
            return sum(1 for k, t in self._transports.items()
                       if t.is_closing() and k not in self._closed_before)

    def hang_up(self) -> None:
        """Close every open connection from the server's side, as a server ends idle
        keep-alive connections."""
        loop = self._loop
        assert loop is not None
        with self._count_lock:
            for transport in self._transports.values():
                loop.call_soon_threadsafe(transport.close)

    # -- serving ----------------------------------------------------------------------------

    def _setup(self, app: web.Application) -> None:
        app.router.add_route("GET", "/{bucket}/{key:.*}", self._get)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        with self._count_lock:
            if transport is not None and id(transport) not in self._transports:
                self._transports[id(transport)] = transport
                self._opened += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return self._answer(request)
        finally:
            with self._count_lock:
                self.in_flight -= 1

    def _answer(self, request: web.Request) -> web.Response:
        name = f"{request.match_info['bucket']}/{request.match_info['key']}"
        spec, if_match = request.headers.get("Range"), request.headers.get("If-Match")
        obj = self._objects.get(name)
        if obj is None:
            return self._log(name, spec, if_match, _error(404, "NoSuchKey"))
        obj.gets += 1
        data, etag = obj.data, obj.etag
        for after, new in list(obj.swaps):
            if obj.gets > after:  # this GET and later ones see the new version
                obj.swaps.remove((after, new))
                obj.data, obj.etag = new, f'"{hashlib.md5(new).hexdigest()}"'
                data, etag = obj.data, obj.etag
        headers = {"ETag": etag, "Accept-Ranges": "bytes",
                   "Content-Type": "binary/octet-stream"}
        if self.set_cookie:
            headers["Set-Cookie"] = self.set_cookie
        if if_match is not None and if_match != etag and not self.ignore_if_match:
            return self._log(name, spec, if_match, _error(412, "PreconditionFailed"))
        if spec is None:
            return self._log(name, spec, if_match, web.Response(body=data, headers=headers))
        span = _span(spec, len(data))
        if span is None:
            return self._log(name, spec, if_match, _error(
                416, "InvalidRange", {"Content-Range": f"bytes */{len(data)}"}))
        first, last = span
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        return self._log(name, spec, if_match,
                            web.Response(status=206, body=data[first:last + 1],
                                         headers=headers))

    def _log(self, key: str, spec: str | None, if_match: str | None,
                response: web.Response) -> web.Response:
        with self._count_lock:
            self.gets.append(Get(key, spec, if_match, response.status))
        return response


def _span(spec: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a single ``bytes=`` range of an object of ``size``; None: 416."""
    first, _, last = spec.removeprefix("bytes=").partition("-")
    if not first:
        n = int(last)
        return (max(size - n, 0), size - 1) if n and size else None
    a = int(first)
    if a >= size:
        return None
    return a, min(int(last), size - 1) if last else size - 1


def _error(status: int, code: str, headers: dict[str, str] | None = None) -> web.Response:
    body = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code></Error>"
    return web.Response(status=status, text=body, content_type="application/xml",
                        headers=headers)
