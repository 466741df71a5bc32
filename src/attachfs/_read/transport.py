"""One GET of a cloud object over the shared pool, and what its answer says.

S3, GCS and Azure reads each build their request (URL, headers, credentials) and hand it here.
The answer's body goes through the one body reader (``body.read_body``), so a server that stops
sending, or sends slower than the minimum rate, ends in ``ReadTimeout`` naming the phase, never
a hung worker: the same limits as plain http(s) reads. S3 is never sent through the egress
proxy; GCS and Azure go through ``route.proxy`` (the Route decides).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

import aiohttp
import yarl

from .._errors import ReadTimeout
from .._limits import Limits
from .._net import pool
from .._redact import redact
from .body import read_body
from .errors import changed, check_body
from .part import Part, size_from

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy

    from .._rules import Route

__all__ = ["answered", "exchange"]


async def exchange(route: Route, limits: Limits, url: yarl.URL, headers: dict[str, str], *,
                   redirects: bool = True) -> tuple[int, CIMultiDictProxy[str], bytes]:
    """One GET over the shared pool: (status, headers, body)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=limits.connect_timeout,
                                    sock_read=limits.read_timeout)
    shown = redact(route.uri)
    try:
        async with pool.session().get(url, headers=headers, proxy=route.proxy,
                                      allow_redirects=redirects, timeout=timeout) as resp:
            body = bytearray()
            await read_body(resp, body, limits=limits, url=shown)
            return resp.status, resp.headers, bytes(body)
    except aiohttp.ConnectionTimeoutError as err:
        raise ReadTimeout.connecting(shown, limits.connect_timeout) from err
    except (asyncio.TimeoutError, TimeoutError) as err:  # waiting for the response headers
        raise ReadTimeout.stalled(shown, limits.read_timeout, "response") from err


def answered(route: Route, start: int, version: str | None, if_none_match: str | None,
             status: int, answer: Mapping[str, str], body: bytes, version_header: str) -> Part:
    """The Part a 200/206/304 answer carries, its version checked against ``version``.

    The precondition is the server's to enforce; its answer is checked here too, so a server
    that ignores it (some emulators and S3-compatible stores do) cannot mix versions."""
    if status == 304:
        return Part(b"", start, -1, if_none_match, not_modified=True)
    answered_version = answer.get(version_header)
    if version and answered_version and answered_version != version:
        raise changed(route.uri, version)
    check_body(status, answer, body)
    size = size_from(answer.get("Content-Range"), start, len(body))
    return Part(body, start, size, answered_version)
