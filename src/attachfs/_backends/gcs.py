"""The GCS backend: gcsfs for listing and metadata, through the Route's egress proxy."""

from __future__ import annotations

from typing import Any

from gcsfs import GCSFileSystem

from .._config import Config
from .._credentials import gcp
from .._rules import Route

__all__ = ["build"]


def build(config: Config | None, route: Route, trust_env: bool,
          common: dict[str, Any]) -> GCSFileSystem:
    gcp_cfg = config.platform.gcp if config else None
    kwargs: dict[str, Any] = {}
    if gcp_cfg is not None and gcp_cfg.endpoint_url:
        kwargs["endpoint_url"] = gcp_cfg.endpoint_url
    kwargs.update(gcp.gcsfs_options(config, route))
    if route.user_project:  # a requester-pays opt-in: the project billed
        kwargs["requester_pays"] = route.user_project
    # Through the configured proxy, never the environment's.
    kwargs.update(egress(route.proxy, trust_env))
    return GCSFileSystem(access="read_only", **kwargs, **common)


def egress(proxy: str | None, trust_env: bool) -> dict[str, Any]:
    """``GCSFileSystem`` options: its aiohttp session through ``proxy``, never the
    environment's proxies unless ``trust_env``."""
    session_kwargs: dict[str, Any] = {"trust_env": trust_env}
    if proxy:
        session_kwargs["proxy"] = proxy
    return {"session_kwargs": session_kwargs}
