"""Real cloud host names on loopback: name resolution and TLS for the strict-cloud fakes.

A read with no ``endpoint_url`` goes to the cloud's own host names (``b.s3.us-east-1.amazonaws
.com``, ``acct.blob.core.usgovcloudapi.net``) on port 443. To see which host a client picks
without any packet leaving the machine, a test:

* installs :class:`LoopbackNames`, which answers ``socket.getaddrinfo`` for the names it routes
  with a loopback address and refuses every other name as NXDOMAIN, recording each name asked.
  Nothing is asked of the system resolver, so no DNS query leaves the machine either;
* serves the fake on that loopback address, port 443, with :func:`sni_context`: a TLS context
  that issues, from the session's test CA, a certificate for whatever server name the client
  sends (the client verifies it as it would verify the cloud's own).

aiohttp's default resolver (``ThreadedResolver``) calls ``socket.getaddrinfo`` through the event
loop, so every aiohttp client in the process resolves through the installed table.

Binding port 443 needs root or ``CAP_NET_BIND_SERVICE``; :func:`can_bind` tells, so a test can skip
with that reason. Each process takes its own loopback addresses (:func:`loopback_address`), so
test runs on one machine do not collide on 443.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["LoopbackNames", "can_bind", "loopback_address", "sni_context"]

_real_getaddrinfo = socket.getaddrinfo


def loopback_address(index: int) -> str:
    """The ``index``-th loopback address of this process (127.X.Y.index, X.Y from the pid)."""
    pid = os.getpid()
    return f"127.{(pid >> 8) & 0xFF or 1}.{pid & 0xFF}.{index}"


def can_bind(address: str, port: int) -> str | None:
    """None if ``address:port`` can be bound here, else why not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as err:
            return f"cannot bind {address}:{port} ({err.strerror}); needs root or " \
                   "CAP_NET_BIND_SERVICE"
    return None


class LoopbackNames:
    """``socket.getaddrinfo`` for a test: routed names resolve to loopback, others fail.

    ``route("amazonaws.com", "127.1.2.3")`` routes that name and every name under it.
    ``asked`` lists every host name looked up while installed (IP literals and ``localhost``
    resolve as usual and are not listed).
    """

    def __init__(self) -> None:
        self.routes: dict[str, str] = {}
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def route(self, suffix: str, address: str) -> None:
        self.routes[suffix.lower().rstrip(".")] = address

    def address_for(self, host: str) -> str | None:
        host = host.lower().rstrip(".")
        best = None
        for suffix, address in self.routes.items():
            if (host == suffix or host.endswith("." + suffix)) and (
                    best is None or len(suffix) > len(best[0])):
                best = (suffix, address)
        return None if best is None else best[1]

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0,
                    proto: int = 0, flags: int = 0) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or name == "localhost" or _is_ip(name):
            return _real_getaddrinfo(host, port, family, type, proto, flags)
        with self._lock:
            self.asked.append(name)
        address = self.address_for(name)
        if address is None:
            raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {name}")
        return _real_getaddrinfo(address, port, socket.AF_INET, type, proto, flags)

    @contextmanager
    def installed(self) -> Iterator[LoopbackNames]:
        socket.getaddrinfo = self.getaddrinfo
        try:
            yield self
        finally:
            socket.getaddrinfo = _real_getaddrinfo


def _is_ip(name: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, name.split("%", 1)[0])
            return True
        except OSError:
            continue
    return False


def sni_context(ca: Any, *, fallback: str = "127.0.0.1") -> ssl.SSLContext:
    """A server context whose certificate, issued by the trustme ``ca``, names exactly the
    server name the client asked for (SNI); ``fallback`` when it sent none (an IP literal)."""
    issued: dict[str, ssl.SSLContext] = {}
    lock = threading.Lock()

    def context_for(name: str) -> ssl.SSLContext:
        with lock:
            ctx = issued.get(name)
            if ctx is None:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ca.issue_cert(name).configure_cert(ctx)
                issued[name] = ctx
            return ctx

    def on_sni(sslobj: ssl.SSLObject, server_name: str | None,
               _: ssl.SSLContext) -> None:
        sslobj.context = context_for(server_name or fallback)

    base = context_for(fallback)
    callback: Callable[[ssl.SSLObject, str | None, ssl.SSLContext], None] = on_sni
    base.sni_callback = callback
    return base
