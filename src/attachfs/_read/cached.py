"""The one cache-through read: a whole object served from the tenant-keyed disk cache.

A whole cached object that is fresh answers with no request; one that is not is revalidated
with a conditional request (a 304 costs no bytes) and otherwise fetched again; an answer that
held the whole object is stored for the next reader. Entries are keyed by tenant and canonical
URI (plus a version the URI pinned), so tenants never share bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .part import Part

if TYPE_CHECKING:
    from .._cache import DiskCache
    from .._rules import Route

__all__ = ["cache_uri", "read_through"]

#: ``read(start, end, if_none_match)``: one read of the object, as the read path makes it.
Reader = Callable[[int, "int | None", "str | None"], Awaitable[Part]]


def cache_uri(route: Route) -> str:
    """What a cache entry is keyed by (with the tenant): the canonical URI, plus the version
    when the URI pinned one (an S3 versionId or GCS generation from an https form)."""
    version = route.location.version
    return f"{route.uri}#version={version}" if version else route.uri


async def read_through(cache: DiskCache, route: Route, read: Reader, start: int = 0,
                       end: int | None = None) -> Part:
    """Bytes ``[start, end)`` of ``route``'s object, through ``cache``.

    With a whole object cached, every range is answered from it (after revalidation); otherwise
    the range is read, and stored when the answer held the whole object. The Part returned is
    the whole object whenever the cache or the answer had all of it."""
    tenant, key = route.tenant, cache_uri(route)
    entry = await asyncio.to_thread(cache.get, tenant, key)
    if entry is not None and entry.start == 0 and len(entry.data) == entry.size:
        if cache.fresh(entry):
            return Part(entry.data, 0, entry.size, entry.version)
        part = await read(0, None, entry.version)
        if part.not_modified:
            await asyncio.to_thread(cache.touch, tenant, key, entry.version)
            return Part(entry.data, 0, entry.size, entry.version)
    else:
        part = await read(start, end, None)
    if len(part.data) == part.size:  # the whole object: keep it for the next reader
        await asyncio.to_thread(cache.put, tenant, key, part.version, part.data,
                                size=part.size)
        return Part(part.data, 0, part.size, part.version)
    return part
