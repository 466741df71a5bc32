"""A recording forward proxy: what an egress proxy sees of attachfs's traffic.

Speaks both forms a client uses with an HTTP proxy: ``CONNECT host:port`` tunnels (https) and
absolute-form requests (``GET http://host:port/path``, plain http). Each is recorded as
``(method, target)``. Absolute-form requests are sent on with ``Connection: close`` so that every
request on a client connection is seen (one request per connection).

For the tests' safety it only forwards to loopback: any other target is answered 403 and
recorded, never connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from typing import NamedTuple
from urllib.parse import urlsplit

from attachfs.testing.servers import TcpServer


class Passed(NamedTuple):
    method: str
    target: str   # "host:port" for CONNECT, the absolute URL otherwise

    @property
    def hostport(self) -> str:
        if self.method == "CONNECT":
            return self.target
        return urlsplit(self.target).netloc


def _loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # already gone
            pass


class ConnectProxy(TcpServer):
    """``with ConnectProxy() as proxy: ... proxy.url ... proxy.passed``"""

    name = "connect-proxy"

    def __init__(self) -> None:
        super().__init__()
        self.passed: list[Passed] = []
        self._lock = threading.Lock()

    def hosts(self) -> set[str]:
        with self._lock:
            return {p.hostport for p in self.passed}

    def clear(self) -> None:
        with self._lock:
            self.passed.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        line, *fields = head.decode("latin-1").split("\r\n")
        method, target, version = line.split(" ", 2)
        with self._lock:
            self.passed.append(Passed(method, target))
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            path = None
        else:
            parts = urlsplit(target)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not _loopback(host):
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            kept = [f for f in fields if f and f.split(":", 1)[0].strip().lower() not in (
                "connection", "proxy-connection", "proxy-authorization", "keep-alive")]
            rewritten = "\r\n".join([f"{method} {path} {version}", *kept,
                                     "Connection: close", "", ""])
            up_writer.write(rewritten.encode("latin-1"))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
