"""A fault-injecting TCP proxy for HTTP/1.1: clients talk to it as if it were the server.

Each request is one attempt: the proxy forwards it upstream with ``Connection: close`` (one
request per connection, so requests and attempts are counted exactly) and applies the next fault
of its script to the answer; once the script is used up, answers pass through unchanged.

Faults: ``Drop()`` (RST as soon as the request is read, before any answer), ``Reset(after)``
(RST after ``after`` body bytes), ``Stall(after)`` (stop sending after
``after`` body bytes; ``after=None``: before any response byte), ``Drip(every)`` (one body byte
per ``every`` seconds), ``Short(missing)`` (close cleanly ``missing`` bytes before the end;
``honest=True`` also lowers Content-Length so only Content-Range can tell), ``Answer(...)``
(a canned response, upstream never asked), ``Then(callback)`` (run ``callback`` and pass).

``down()`` stops listening, so connections are refused, until ``up()`` listens again on the
same port: a server stopped and started. ``connections`` counts the connections accepted, and
``clock`` (if set) stamps each request's ``at``.

The proxy only ever connects to its upstream on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict

from attachfs.testing.servers import TcpServer


@dataclass
class Drop:
    pass


@dataclass
class Reset:
    after: int = 0


@dataclass
class Stall:
    after: int | None = 0


@dataclass
class Drip:
    every: float = 0.05


@dataclass
class Short:
    missing: int
    honest: bool = False


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = "Fault"


@dataclass
class Then:
    callback: Callable[[], None]
    fault: object = None  # applied after the callback


def slow_down(status: int = 503, retry_after: str | None = None) -> Answer:
    """S3's throttling answer."""
    headers = {"Content-Type": "application/xml"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return Answer(status, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                          b"<Message>Please reduce your request rate.</Message></Error>",
                  headers, "Slow Down")


def error_document(code: str = "InternalError") -> Answer:
    """A 200 whose body is an XML error document: data, as any 2xx body (S3 sends error
    documents with 200 only for CopyObject and CompleteMultipartUpload, never for GetObject)."""
    return Answer(200, f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                       "<Message>We encountered an internal error.</Message></Error>".encode(),
                  {"Content-Type": "application/xml"}, "OK")


@dataclass
class Seen:
    method: str
    target: str
    headers: CIMultiDict
    fault: object
    at: float | None = None


class FaultyProxy(TcpServer):
    """``with FaultyProxy(upstream_port) as p: p.script = [Reset(100)]; ... p.url ... p.seen``"""

    name = "faulty-proxy"

    def __init__(self, upstream_port: int):
        super().__init__()
        self.upstream_port = upstream_port
        self.script: list[object] = []
        self.seen: list[Seen] = []
        self.connections = 0
        self.clock: Callable[[], float] | None = None
        self._lock = threading.Lock()
        self._server: asyncio.base_events.Server | None = None

    @property
    def attempts(self) -> int:
        return len(self.seen)

    def reset(self, *script: object) -> None:
        with self._lock:
            self.script = list(script)
            self.seen.clear()
            self.connections = 0

    # -- a server stopped and started ----------------------------------------------------------

    async def _start_serving(self, sock: socket.socket) -> Callable[[], Awaitable[None]]:
        self._server = await asyncio.start_server(self._tracked, sock=sock)

        async def stop() -> None:
            if self._server is not None:
                self._server.close()

        return stop

    def down(self) -> None:
        """Stop listening: every connection is refused until ``up()``."""
        self._call(self._down())

    def up(self) -> None:
        """Listen again on the same port."""
        self._call(self._up())

    async def _down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _up(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._tracked, self.host, self.port,
                                                      reuse_address=True)

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._loop is None:
            raise RuntimeError("the proxy is not started")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- one connection = one request = one attempt ------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    async def _serve(self, reader, writer) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        line, *lines = head.decode("latin-1").split("\r\n")
        method, target, version = line.split(" ", 2)
        headers = CIMultiDict()
        for item in lines:
            if item:
                name, _, value = item.partition(":")
                headers.add(name.strip(), value.strip())
        with self._lock:
            fault = self.script.pop(0) if self.script else None
            self.seen.append(Seen(method, target, headers, fault,
                                  self.clock() if self.clock is not None else None))
        if isinstance(fault, Then):
            fault.callback()
            fault = fault.fault
        if isinstance(fault, Answer):
            await self._answer(writer, method, fault)
            return
        if isinstance(fault, Drop):
            _rst(writer)
            return
        if isinstance(fault, Stall) and fault.after is None:
            await reader.read()  # hold until the client gives up
            return
        body = b""
        length = headers.get("Content-Length")
        if length and int(length):
            body = await reader.readexactly(int(length))
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            kept = [f"{k}: {v}" for k, v in headers.items()
                    if k.lower() not in ("connection", "keep-alive")]
            up_writer.write(("\r\n".join([line, *kept, "Connection: close", "", ""]))
                            .encode("latin-1") + body)
            await up_writer.drain()
            response_head = await up_reader.readuntil(b"\r\n\r\n")
            await self._respond(fault, method, response_head, up_reader, reader, writer)
        finally:
            up_writer.close()

    async def _answer(self, writer, method: str, answer: Answer) -> None:
        headers = {"Content-Length": str(len(answer.body)), "Connection": "close",
                   **answer.headers}
        head = f"HTTP/1.1 {answer.status} {answer.reason}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else answer.body))
        await writer.drain()

    async def _respond(self, fault, method, head: bytes, up_reader, reader, writer) -> None:
        if fault is None or method == "HEAD":
            writer.write(head)
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            return
        if isinstance(fault, Short):
            body = await up_reader.read()
            kept = body[:max(len(body) - fault.missing, 0)]
            if fault.honest:
                head = _with_length(head, len(kept))
            writer.write(head + kept)
            await writer.drain()
            return
        writer.write(head)
        await writer.drain()
        if isinstance(fault, Drip):
            while byte := await up_reader.read(1):
                writer.write(byte)
                await writer.drain()
                await asyncio.sleep(fault.every)
            return
        sent = 0
        limit = fault.after
        while sent < limit:
            data = await up_reader.read(min(65536, limit - sent))
            if not data:
                break
            writer.write(data)
            sent += len(data)
        await writer.drain()
        if isinstance(fault, Reset):
            _rst(writer)
        elif isinstance(fault, Stall):
            await reader.read()  # hold until the client gives up


def _with_length(head: bytes, length: int) -> bytes:
    lines = head.decode("latin-1").split("\r\n")
    out = [f"Content-Length: {length}" if line.lower().startswith("content-length:") else line
           for line in lines]
    return "\r\n".join(out).encode("latin-1")


def _rst(writer: asyncio.StreamWriter) -> None:
    """Abort with a TCP reset (SO_LINGER 0), as a dropped connection looks to the client."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
