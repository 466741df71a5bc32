"""Servers on 127.0.0.1, each on its own thread with its own event loop.

A fake on the caller's loop plus a synchronous fsspec call deadlocks, so every local server runs
its loop on a thread of its own:

* ``ServerThread``: the thread, the loop, start and stop (the one implementation).
* ``AppServer``: an aiohttp application that records every request (``requests``); handlers set
  ``request[PRINCIPAL]`` to have the caller's identity recorded with it.
* ``TcpServer``: a raw asyncio TCP server, for proxies that work below HTTP.
* ``LocalHTTPServer``: an ``AppServer`` serving stored objects with ranges and ETags.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

from aiohttp import web
from multidict import CIMultiDict

__all__ = ["PRINCIPAL", "RECORD", "AppServer", "LocalHTTPServer", "RecordedRequest",
           "ServerThread", "TcpServer"]

_LOOPBACK = "127.0.0.1"


_Server = TypeVar("_Server", bound="ServerThread")


class ServerThread:
    """A server bound to ``host`` on a free port (or ``port``, e.g. 443 for a fake that must
    answer on a cloud's own port), served by its own thread and loop.

    Subclasses implement ``_start_serving(sock)``: serve on the bound socket, and return the
    coroutine function that stops it."""

    def __init__(self, *, host: str = _LOOPBACK, ssl_context: ssl.SSLContext | None = None,
                 port: int = 0):
        self.host = host
        self.port: int | None = None
        self._bind_port = port
        self._ssl_context = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        scheme = "https" if self._ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self._ssl_context else 80
        return f"{scheme}://{host}" + ("" if self.port == default else f":{self.port}")

    async def _start_serving(self, sock: socket.socket) -> Callable[[], Awaitable[None]]:
        raise NotImplementedError

    def start(self: _Server, timeout: float = 30.0) -> _Server:
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._bind_port))
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                stop = loop.run_until_complete(self._start_serving(sock))
            except BaseException as err:  # reported to start()'s caller
                failure.append(err)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            for task in list(self._tasks):  # connections still open end with the server
                task.cancel()
            loop.run_until_complete(stop())
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not started.wait(timeout=timeout):
            raise RuntimeError(f"{type(self).__name__} did not start within {timeout:g} s")
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            self.port = None
            sock.close()
            raise RuntimeError(f"{type(self).__name__} failed to start: {failure[0]!r}") \
                from failure[0]
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=timeout)
        self._thread = self._loop = None
        self.port = None

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class TcpServer(ServerThread):
    """A raw TCP server: subclasses implement ``_client(reader, writer)``."""

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _tracked(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._client(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _start_serving(self, sock: socket.socket) -> Callable[[], Awaitable[None]]:
        server = await asyncio.start_server(self._tracked, sock=sock, ssl=self._ssl_context)

        async def stop() -> None:
            server.close()

        return stop


# --------------------------------------------------------------------------- aiohttp apps

@dataclass
class RecordedRequest:
    """One request a server received, as the tests see it (``request[RECORD]`` in handlers).

    ``path`` is percent-decoded; ``raw_path`` is the request target as sent, query included.
    ``body`` is the parsed form (dict of single values) or JSON document when the request
    carried one, else the raw bytes. ``principal`` is whoever the server resolved the caller to
    (None when it could not); ``status`` is the status it answered."""

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: Any  # multidict.CIMultiDict[str]: case-insensitive
    body: Any
    principal: Any = None
    status: int | None = None


def _parse_body(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    if content_type == "application/x-www-form-urlencoded":
        return {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
    if content_type.endswith("json"):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


#: ``request[PRINCIPAL]``: whoever a handler resolved the caller to.
PRINCIPAL = web.RequestKey("principal", object)
#: ``request[RECORD]``: the RecordedRequest of the request (a streaming handler fills it in
#: before the body ends).
RECORD = web.RequestKey("record", RecordedRequest)


class AppServer(ServerThread):
    """An aiohttp application; subclasses add routes in ``_setup(app)``. Every request is
    recorded in ``requests``."""

    def __init__(self, *, host: str = _LOOPBACK, ssl_context: ssl.SSLContext | None = None,
                 port: int = 0):
        super().__init__(host=host, ssl_context=ssl_context, port=port)
        self._records: list[RecordedRequest] = []
        self._lock = threading.Lock()

    def _setup(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    def clear_requests(self) -> None:
        with self._lock:
            self._records.clear()

    async def _start_serving(self, sock: socket.socket) -> Callable[[], Awaitable[None]]:
        app = web.Application(middlewares=[self._record], client_max_size=1 << 30)
        self._setup(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=self._ssl_context).start()
        return runner.cleanup

    @web.middleware
    async def _record(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        raw = await request.read()
        record = RecordedRequest(
            method=request.method, path=request.path, raw_path=request.raw_path,
            query=dict(request.query), headers=CIMultiDict(request.headers),
            body=_parse_body(request.content_type, raw))
        request[RECORD] = record
        with self._lock:
            self._records.append(record)
        try:
            response = await handler(request)
        except web.HTTPException as err:
            record.status = err.status
            raise
        finally:
            record.principal = request.get(PRINCIPAL)
        record.status = response.status
        return response


@dataclass(frozen=True)
class _Stored:
    data: bytes
    headers: Mapping[str, str | None]
    etag: str
    last_modified: str


class _Unsatisfiable(Exception):
    pass


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive; ``None`` to ignore the header (RFC 9110: malformed or
    multi-range headers may be ignored); raises ``_Unsatisfiable`` for a 416."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash or not (first_s or last_s):
        return None
    try:
        if not first_s:                       # suffix: the last n bytes
            n = int(last_s)
            if n <= 0 or size == 0:
                raise _Unsatisfiable
            return max(size - n, 0), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else None
    except ValueError:
        return None
    if first < 0 or (last is not None and last < first):
        return None
    if first >= size:
        raise _Unsatisfiable
    return first, size - 1 if last is None else min(last, size - 1)


def _path_key(raw_path: str) -> tuple[str, ...]:
    return tuple(unquote(segment) for segment in raw_path.split("/"))


class LocalHTTPServer(AppServer):
    """Serves stored objects over http or https on 127.0.0.1, recording every request.

    GET and HEAD only, with ``Range`` (``bytes=a-b``, ``a-``, ``-n``; 206 + ``Content-Range``;
    416 out of range; other forms are ignored and answered 200), ``If-Match`` (412),
    ``ETag``, ``Last-Modified``, ``Content-Length`` and ``Accept-Ranges``; 404 when missing.
    ``If-Match`` compares the ETag served strongly, as RFC 9110 requires: a weak or missing
    ETag matches nothing but ``*``.

    Path matching: ``put`` takes the path as it appears in a URL (percent-encoded; characters
    that need no encoding may also be given as they are). Paths are compared segment by segment
    after percent-decoding each segment, because clients differ in what they encode (yarl sends
    ``/=`` for ``/%3D``, requests sends ``%20`` for a space): ``put("/a b")`` and ``put("/a%20b")``
    are the same object, ``/%3D`` and ``/=`` too, but an encoded slash is not a slash
    (``/a%2Fb`` is one segment, ``/a/b`` two) and ``%252F`` is the three characters ``%2F``.
    The query string is never part of the match (signed-URL-style queries are ignored) but is
    recorded in :attr:`requests`, raw.

    The server runs on its own thread and event loop: a fake on the caller's loop plus a
    synchronous fsspec call deadlocks.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context=ssl_context)
        self._objects: dict[tuple[str, ...], _Stored] = {}

    def put(self, path: str, data: bytes, *, headers: Mapping[str, str | None] | None = None
            ) -> None:
        """Store ``data`` at ``path``; ``headers`` override the defaults (``None`` drops one)."""
        if not path.startswith("/"):
            path = "/" + path
        self._objects[_path_key(path)] = _Stored(
            data=bytes(data), headers=dict(headers or {}),
            etag=f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"',
            last_modified=email.utils.formatdate(usegmt=True))

    def clear(self) -> None:
        """Forget every object and every recorded request."""
        self._objects.clear()
        self.clear_requests()

    def _setup(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        obj = self._objects.get(_path_key(request.rel_url.raw_path))
        if obj is None:
            return web.Response(status=404, text="not found\n")
        merged: dict[str, str | None] = {"Accept-Ranges": "bytes", "ETag": obj.etag,
                                         "Last-Modified": obj.last_modified,
                                         "Content-Type": "application/octet-stream"}
        merged.update(obj.headers)
        headers = {k: v for k, v in merged.items() if v is not None}
        # RFC 9110 13.1.1: If-Match compares strongly, so a weak ETag (W/"...") never matches.
        if_match = [tag.strip() for tag in request.headers.get("If-Match", "").split(",")]
        served = headers.get("ETag")
        strong = served is not None and not served.startswith("W/")
        if if_match != [""] and "*" not in if_match and not (strong and served in if_match):
            return web.Response(status=412, headers=headers)
        size, body, status = len(obj.data), obj.data, 200
        if "Range" in request.headers:
            try:
                span = _parse_range(request.headers["Range"], size)
            except _Unsatisfiable:
                headers["Content-Range"] = f"bytes */{size}"
                return web.Response(status=416, headers=headers)
            if span is not None:
                first, last = span
                body, status = obj.data[first:last + 1], 206
                headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return web.Response(status=status, body=body, headers=headers)


