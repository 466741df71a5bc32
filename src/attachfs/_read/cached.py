"""The one cache-through read: objects and blocks served from the tenant-keyed disk cache.

A whole cached object that is fresh answers with no request; one that is not is revalidated
with a conditional request (a 304 costs no bytes) and otherwise fetched again; an answer that
held the whole object is stored for the next reader. An object larger than one block is kept
as aligned blocks (``read_blocks``): an open file that knows the object's version reads the
blocks held at that version from disk and fetches the others, consecutive ones in one request.

Entries are keyed by tenant and ``cache_uri`` (the canonical URI, the S3 partition and endpoint
kind or Azure cloud it is read from when that is not the standard one, plus a version the URI
pinned), so tenants never share bytes, and neither does the same bucket name in two AWS
partitions. ``object_key`` is that identity for the in-process block cache (``_blocks``), with
the identity the read is made as and the endpoint the config names. ``tail_info`` is
``info()`` of an object through that cache: one ranged GET of its tail, no HEAD.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import _blocks
from .._limits import TAIL
from .._uri import s3_partition
from .part import Part

if TYPE_CHECKING:
    from .._cache import DiskCache
    from .._config import Config
    from .._rules import Route

__all__ = ["SUFFIX_RANGES", "cache_uri", "object_key", "offset", "read_blocks", "read_through",
           "store_blocks", "tail_info"]

#: Backends whose servers answer suffix ranges (bytes=-N); Azure Blob does not.
SUFFIX_RANGES = ("s3", "gcs", "http")

#: ``read(start, end, if_none_match)``: one read of the object, as the read path makes it.
Reader = Callable[[int, "int | None", "str | None"], Awaitable[Part]]


def _endpoint(route: Route) -> str:
    """Where the bytes come from beyond the URI, as the route tells it: the S3 partition and
    endpoint kind an https form named, an Azure account's cloud. Empty for the standard public
    endpoints."""
    loc = route.location
    if route.backend == "s3":
        endpoint = loc.endpoint
        partition = endpoint.partition if endpoint else s3_partition(loc.region)
        flags = "".join(name for name, on in (
            ("+fips", endpoint is not None and endpoint.fips),
            ("+dualstack", endpoint is not None and endpoint.dualstack),
            ("+accelerate", endpoint is not None and endpoint.accelerate)) if on)
        return "" if partition == "aws" and not flags else partition + flags
    if route.backend == "azure":
        return loc.endpoint_suffix or ""
    return ""


def _configured(route: Route, config: Config | None) -> str:
    """What the config adds to where the bytes come from: an endpoint URL (an emulator, an
    S3-compatible store), the partition of the configured S3 region."""
    platform = config.platform if config is not None else None
    if platform is None:
        return ""
    if route.backend == "s3" and platform.aws is not None:
        return f"{s3_partition(platform.aws.region)}@{platform.aws.endpoint_url or ''}"
    if route.backend == "gcs" and platform.gcp is not None:
        return platform.gcp.endpoint_url or ""
    if route.backend == "azure" and platform.azure is not None:
        return platform.azure.endpoint_url or ""
    return ""


def cache_uri(route: Route) -> str:
    """What a disk cache entry is keyed by (with the tenant): the canonical URI, the endpoint
    it is read from when that is not the standard one, plus the version when the URI pinned
    one (an S3 versionId or GCS generation from an https form)."""
    uri = route.uri
    endpoint = _endpoint(route)
    if endpoint:
        uri = f"{uri}#endpoint={endpoint}"
    version = route.location.version
    return f"{uri}#version={version}" if version else uri


def object_key(route: Route, config: Config | None) -> tuple[str | None, str, str]:
    """The in-process block cache's key for ``route``'s object: the tenant; the identity the
    read is made as, its mode and the configured endpoint; and ``cache_uri``."""
    scope = f"{route.mode}:{route.identity or ''}:{_configured(route, config)}"
    return route.tenant, scope, cache_uri(route)


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


async def store_blocks(cache: DiskCache, route: Route, part: Part, block: int) -> None:
    """Keep the whole aligned blocks of ``block`` bytes that ``part`` holds (the last block of
    the object may be shorter)."""
    if part.version is None or part.size <= 0 or part.start < 0 or not part.data:
        return
    tenant, key = route.tenant, cache_uri(route)
    end = part.start + len(part.data)
    first = -(-part.start // block) * block
    view = memoryview(part.data)
    for s in range(first, end, block):
        e = min(s + block, part.size)
        if e > end:
            break
        await asyncio.to_thread(cache.put, tenant, key, part.version,
                                bytes(view[s - part.start:e - part.start]), start=s,
                                size=part.size)


async def read_blocks(cache: DiskCache, route: Route, read: Reader, start: int, end: int, *,
                      version: str | None, size: int, block: int) -> Part:
    """Bytes of ``route``'s object at ``version`` (of ``size`` bytes) covering ``[start, end)``,
    through the cache's aligned blocks: the held ones from disk, the others fetched with
    ``read`` (consecutive missing blocks in one request) and stored. The Part returned spans
    the aligned blocks, a superset of ``[start, end)``."""
    tenant, key = route.tenant, cache_uri(route)
    first, stop = start // block * block, min(size, -(-end // block) * block)
    held: dict[int, bytes] = {}
    for s in range(first, stop, block):
        entry = await asyncio.to_thread(cache.get, tenant, key, start=s, version=version)
        if entry is not None and len(entry.data) == min(block, size - s):
            held[s] = entry.data
    runs: list[tuple[int, int]] = []
    for s in range(first, stop, block):
        if s in held:
            continue
        e = min(s + block, size)
        if runs and runs[-1][1] == s:
            runs[-1] = (runs[-1][0], e)
        else:
            runs.append((s, e))
    parts = await asyncio.gather(*(read(s, e, None) for s, e in runs))
    for part in parts:
        await store_blocks(cache, route, part, block)
        view = memoryview(part.data)
        for s in range(part.start, part.start + len(part.data), block):
            held[s] = bytes(view[s - part.start:s - part.start + block])
    data = b"".join(held[s] for s in range(first, stop, block))
    return Part(data, first, size, version)


async def tail_info(inner: Any, route: Route, config: Config | None, *,
                    refresh: bool = False) -> dict[str, Any]:
    """What ``info()`` says of an object, from one ranged GET of its tail (no HEAD): its size,
    type and the answer's ETag, Last-Modified, Content-Type and version id, under the names
    the backend's own filesystem uses. The tail goes into the shared block cache, so a parquet
    or zip reader's footer read that follows costs nothing; an answer less than ``INFO_TTL``
    old is given again without a request (unless ``refresh``)."""
    shared = _blocks.shared()
    key = object_key(route, config)
    recent = None if refresh else shared.recent(key)
    if recent is not None and recent.info is not None:
        return dict(recent.info)
    from . import guarded, read  # the read path's entry point: this package

    start, end = (-TAIL, None) if route.backend in SUFFIX_RANGES else (0, TAIL)
    part: Part = await guarded(route, read(inner, route, start, end, config=config))
    size = max(part.size, 0)
    info = _described(route, part, size)
    shared.learn(key, part.version, size, info=info)
    if part.version is not None and part.data:
        shared.put(key, part.version, offset(part), part.data)
    return dict(info)


def _described(route: Route, part: Part, size: int) -> dict[str, Any]:
    meta = part.meta
    info: dict[str, Any] = {"name": route.uri, "size": size, "type": "file"}
    etag, modified = meta.get("ETag"), meta.get("Last-Modified")
    content_type = meta.get("Content-Type")
    when = _when(modified)
    if route.backend == "s3":
        info.update(ETag=etag, LastModified=when, ContentType=content_type,
                    VersionId=meta.get("x-amz-version-id"))
    elif route.backend == "gcs":
        info.update(etag=etag, updated=when.isoformat().replace("+00:00", "Z") if when
                    else None, contentType=content_type, generation=meta.get(
                        "x-goog-generation", route.location.version))
    else:
        info.update(etag=etag, last_modified=when, content_type=content_type,
                    version_id=meta.get("x-ms-version-id"))
    info.update({"ETag": etag, "Last-Modified": modified, "Content-Type": content_type})
    return {k: v for k, v in info.items() if v is not None}


def _when(value: str | None) -> Any:
    """A Last-Modified header (RFC 9110 date, or ISO 8601 from the Azure SDK) as a UTC
    datetime; None if absent or unreadable."""
    import datetime as dt
    from email.utils import parsedate_to_datetime

    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def offset(part: Part) -> int:
    """Where ``part``'s bytes begin in the object (a suffix answer says so by its size)."""
    return part.start if part.start >= 0 else max(part.size - len(part.data), 0)
