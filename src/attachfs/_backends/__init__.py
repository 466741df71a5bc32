"""Build and reuse the inner fsspec filesystems (s3fs, gcsfs, adlfs, http) for a Route.

This module carries out a decision it is handed: the Route says which backend and which Grant
(what to authenticate as); nothing here re-decides an access rule. Inner filesystems are
created with ``skip_instance_cache=True`` and kept in our own table keyed by everything that
makes two of them differ (backend, grant, account), so two tenants never share one: fsspec's
own instance cache keys on constructor arguments, which may hold secrets and ignore tenants.
"""

from __future__ import annotations

import asyncio
import threading

from fsspec.asyn import AsyncFileSystem

from .._config import Config
from .._rules import Grant, Route
from .._types import Backend
from .._uri import Location, S3Endpoint, parse

__all__ = ["Backends", "inner_path", "outer_location"]

#: What makes two inner filesystems differ: backend, tenant, grant, Azure account.
#: backend, tenant, grant, Azure account, S3 endpoint kind, endpoint suffix, requester pays,
#: GCS billing project: everything that makes two inner filesystems differ.
_Key = tuple[Backend, str | None, Grant, str | None, S3Endpoint | None, str | None, bool,
             str | None]


class Backends:
    """The inner filesystems of one AttachFileSystem, created on first use.

    Every inner filesystem shares the owning AttachFileSystem's event loop and mode
    (``asynchronous``), so our coroutines await theirs directly and the file objects they open
    run their sync calls on the same loop.
    """

    def __init__(self, config: Config | None, loop: asyncio.AbstractEventLoop | None,
                 asynchronous: bool):
        self.config = config
        self.loop = loop
        self.asynchronous = asynchronous
        self._fs: dict[_Key, AsyncFileSystem] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Backends {sorted(k[0] for k in self._fs)}>"

    def get(self, route: Route) -> AsyncFileSystem:
        key = self.cache_key(route)
        fs = self._fs.get(key)
        if fs is None:
            with self._lock:
                fs = self._fs.get(key)
                if fs is None:
                    fs = self._fs[key] = self._build(route)
        return fs

    def built(self, route: Route) -> AsyncFileSystem | None:
        """The inner filesystem for ``route`` if one was built already (None: not yet)."""
        return self._fs.get(self.cache_key(route))

    @staticmethod
    def cache_key(route: Route) -> _Key:
        loc = route.location
        account = loc.account if loc.backend == "azure" else None
        # The endpoint (S3's kind, Azure's cloud) and the billing opt-in are built in.
        return (route.backend, route.tenant, route.grant, account, loc.endpoint,
                loc.endpoint_suffix, route.requester_pays, route.user_project)

    def invalidate_caches(self) -> None:
        """Drop the listing caches of every inner filesystem built so far."""
        for fs in list(self._fs.values()):
            fs.invalidate_cache()

    def _build(self, route: Route) -> AsyncFileSystem:
        """The inner filesystem of ``route``'s backend. Every one shares the owning
        filesystem's loop and mode and skips fsspec's instance cache (this table is the cache);
        egress follows the Route: its proxy, and the environment's proxies only if trusted."""
        common = {"asynchronous": self.asynchronous, "loop": self.loop,
                  "skip_instance_cache": True}
        trust_env = bool(self.config is not None and self.config.platform.http.trust_env)
        if route.backend == "s3":
            from . import s3

            return s3.build(self.config, route, trust_env, common)
        if route.backend == "gcs":
            from . import gcs

            return gcs.build(self.config, route, trust_env, common)
        if route.backend == "azure":
            from . import azure

            return azure.build(self.config, route, trust_env, common)
        from .._net.guard import Guard
        from .http import GuardedHTTPFileSystem

        # Every connection of this filesystem is checked by the network guard, goes through
        # route.proxy, and ignores the environment's proxies unless the config trusts them.
        return GuardedHTTPFileSystem(Guard.from_config(self.config, proxy=route.proxy),
                                     **common)


def inner_path(loc: Location) -> str:
    """The path the inner filesystem understands for ``loc``."""
    if loc.backend == "http":
        return loc.url or ""
    if not loc.key:
        return loc.bucket or ""
    return f"{loc.bucket}/{loc.key}"


def outer_location(loc: Location, inner: str) -> Location:
    """Map a name returned by the inner filesystem back to a Location like ``loc``."""
    if loc.backend == "http":
        return parse(inner)
    inner = inner.lstrip("/")
    bucket, _, key = inner.partition("/")
    if bucket != loc.bucket:  # pragma: no cover - inner filesystems stay in one bucket
        raise ValueError(f"inner filesystem returned {inner!r} outside bucket {loc.bucket!r}")
    return loc.with_key(key)
