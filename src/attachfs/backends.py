"""Build and reuse the inner fsspec filesystems (s3fs, gcsfs, adlfs, http) for a Route.

This module carries out a decision it is handed: the Route says which backend and which Grant
(what to authenticate as); nothing here re-decides an access rule. Inner filesystems are
created with ``skip_instance_cache=True`` and kept in our own table keyed by everything that
makes two of them differ (backend, grant, account), so two tenants never share one: fsspec's
own instance cache keys on constructor arguments, which may hold secrets and ignore tenants.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any

from fsspec.asyn import AsyncFileSystem

from .config import Config
from .errors import ConfigError
from .rules import Route
from .uri import Location

#: Builds the inner filesystem for a route; credentials/ registers one per grant kind.
Factory = Callable[["Backends", Route], AsyncFileSystem]


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
        self._fs: dict[tuple, AsyncFileSystem] = {}
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

    @staticmethod
    def cache_key(route: Route) -> tuple:
        loc = route.location
        account = loc.account if loc.backend == "azure" else None
        return (route.backend, route.tenant, route.grant, account)

    def invalidate_caches(self) -> None:
        """Drop the listing caches of every inner filesystem built so far."""
        for fs in list(self._fs.values()):
            fs.invalidate_cache()

    # -- one builder per backend ------------------------------------------------------------

    def _build(self, route: Route) -> AsyncFileSystem:
        build = {
            "s3": self._s3,
            "gcs": self._gcs,
            "azure": self._azure,
            "http": self._http,
        }[route.backend]
        return build(route)

    def _common(self) -> dict[str, Any]:
        return {"asynchronous": self.asynchronous, "loop": self.loop, "skip_instance_cache": True}

    def _s3(self, route: Route) -> AsyncFileSystem:
        from s3fs import S3FileSystem

        from .credentials import aws

        aws_cfg = self.config.platform.aws if self.config else None
        client_kwargs: dict[str, Any] = {}
        kwargs: dict[str, Any] = {}
        if aws_cfg is not None:
            if aws_cfg.endpoint_url:
                kwargs["endpoint_url"] = aws_cfg.endpoint_url
            if aws_cfg.region:
                client_kwargs["region_name"] = aws_cfg.region
        if "region_name" not in client_kwargs and route.location.region:
            client_kwargs["region_name"] = route.location.region
        kwargs.update(aws.s3fs_options(self.config, route))
        # S3 traffic never goes through a proxy (the seed: S3 uses IAM, not IP allowlists),
        # and botocore would otherwise take HTTP(S)_PROXY from the environment.
        config_kwargs = {"proxies": {}}
        return S3FileSystem(client_kwargs=client_kwargs, config_kwargs=config_kwargs, **kwargs,
                            **self._common())

    def _gcs(self, route: Route) -> AsyncFileSystem:
        from gcsfs import GCSFileSystem

        from . import netguard
        from .credentials import gcp

        gcp_cfg = self.config.platform.gcp if self.config else None
        kwargs: dict[str, Any] = {}
        if gcp_cfg is not None and gcp_cfg.endpoint_url:
            kwargs["endpoint_url"] = gcp_cfg.endpoint_url
        kwargs.update(gcp.gcsfs_options(self.config, route))
        # Egress (DESIGN.md): through the configured proxy, never the environment's.
        kwargs.update(netguard.gcsfs_egress(route.proxy, self._trust_env()))
        return GCSFileSystem(access="read_only", **kwargs, **self._common())

    def _azure(self, route: Route) -> AsyncFileSystem:
        from . import netguard
        from .credentials import azure

        account = route.location.account or self._default_azure_account()
        kwargs = azure.adlfs_options(self.config, route, account)
        # Egress (DESIGN.md): through the configured proxy, never the environment's.
        return netguard.azure_filesystem(proxy=route.proxy, trust_env=self._trust_env(),
                                         **kwargs, **self._common())

    def _default_azure_account(self) -> str:
        # rules.route() already applied platform.azure.account (and refused a missing account
        # in a multi-tenant config); what is left is ambient mode's environment default.
        account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
        if not account:
            raise ConfigError(
                "an az:// URI names no storage account and none is configured: write "
                "https://ACCOUNT.blob.core.windows.net/CONTAINER/KEY or "
                "az://CONTAINER@ACCOUNT.blob.core.windows.net/KEY, or set "
                "platform.azure.account",
                key="platform.azure.account",
            )
        return account

    def _http(self, route: Route) -> AsyncFileSystem:
        from . import netguard

        # Every connection of this filesystem is checked by the network guard (DESIGN.md
        # "SSRF"), goes through route.proxy, and ignores the environment's proxies unless the
        # config trusts it (a stray HTTPS_PROXY must not reroute customer data).
        guard = netguard.Guard.from_config(self.config, proxy=route.proxy)
        return netguard.http_filesystem(guard, **self._common())

    def _trust_env(self) -> bool:
        return bool(self.config is not None and self.config.platform.http.trust_env)


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
        from .uri import parse

        return parse(inner)
    inner = inner.lstrip("/")
    bucket, _, key = inner.partition("/")
    if bucket != loc.bucket:  # pragma: no cover - inner filesystems stay in one bucket
        raise ValueError(f"inner filesystem returned {inner!r} outside bucket {loc.bucket!r}")
    return loc.with_key(key)
