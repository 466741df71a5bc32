"""One aiohttp connection pool per event loop, shared by every backend's reads.

s3fs, gcsfs and adlfs each keep their own client and pool per instance (and attachfs keeps an
instance per tenant identity); the hot read path instead sends every ranged GET through one
pool, so connections to a host are reused across tenants' requests (a connection carries no
identity: each request is authorised on its own) and a batch of 2,000 small objects opens a
bounded number of connections.

The pool keeps no cookies (``DummyCookieJar``): a cookie one tenant's answer set must never ride
along on another tenant's request over the shared pool, and no cloud read needs one. Skipping
the jar is also a quarter of aiohttp's own cost per small request. Each connection buffers up
to ``POOL_READ_BUFFER`` bytes before it pauses its socket for the reader to catch up.

Requests sent straight to a cloud service (no proxy) go through ``wire``, a small HTTP/1.1
client whose answers are received into their final buffers; it keeps its own connections, also
one pool per loop (``direct``). aiohttp's session carries the rest: requests through a proxy.

A forked child gets a new fsspec loop, and with it a new pool: sessions are never shared across
processes or loops.
"""

from __future__ import annotations

import asyncio
import atexit
import weakref

import aiohttp

from .._limits import POOL_CONNECTIONS, POOL_CONNECTIONS_PER_HOST, POOL_READ_BUFFER
from . import wire

__all__ = ["direct", "forget", "session"]

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary())


def session() -> aiohttp.ClientSession:
    """The pool of the running loop, created on first use."""
    loop = asyncio.get_running_loop()
    s = _sessions.get(loop)
    if s is None or s.closed:
        s = _sessions[loop] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_CONNECTIONS,
                                           limit_per_host=POOL_CONNECTIONS_PER_HOST,
                                           ttl_dns_cache=300),
            # Proxies come from the config (Route.proxy), never from the environment: a stray
            # HTTPS_PROXY must not reroute customer data.
            trust_env=False,
            # Bytes as stored: a gzip-encoded object is returned as the object, not unzipped.
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            read_bufsize=POOL_READ_BUFFER,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120),
        )
    return s


_direct: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, wire.Pool] = (
    weakref.WeakKeyDictionary())


def direct() -> wire.Pool:
    """The running loop's pool of direct connections (``wire``), created on first use."""
    loop = asyncio.get_running_loop()
    p = _direct.get(loop)
    if p is None or p.closed:
        p = _direct[loop] = wire.Pool(POOL_CONNECTIONS_PER_HOST)
    return p


def forget(loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession | None:
    """Drop the pools of ``loop``: its direct connections are closed now (their sockets as the
    loop runs next), its aiohttp session is returned for its owner to close."""
    p = _direct.pop(loop, None)
    if p is not None:
        p.close()
    return _sessions.pop(loop, None)


def _close_all() -> None:
    for loop, p in list(_direct.items()):
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(p.close) if loop.is_running() else p.close()
            except Exception:  # noqa: S110 - interpreter shutdown: nothing left to tidy
                pass
    for loop, s in list(_sessions.items()):
        if s.closed or loop.is_closed():
            continue
        try:
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(s.close(), loop).result(timeout=2)
            else:
                loop.run_until_complete(s.close())
        except Exception:  # interpreter shutdown: nothing left to tidy
            pass


atexit.register(_close_all)
