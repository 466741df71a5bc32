"""The S3 backend: s3fs for listing and metadata, never through a proxy."""

from __future__ import annotations

from typing import Any

from s3fs import S3FileSystem

from .._config import Config
from .._credentials import aws
from .._rules import Route

__all__ = ["build"]


def build(config: Config | None, route: Route, trust_env: bool,
          common: dict[str, Any]) -> S3FileSystem:
    aws_cfg = config.platform.aws if config else None
    client_kwargs: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    if aws_cfg is not None and aws_cfg.endpoint_url:
        kwargs["endpoint_url"] = aws_cfg.endpoint_url
    # The URL's own region first, as the reader does (a China URL lists from China).
    region = route.location.region or (aws_cfg.region if aws_cfg is not None else None)
    if region:
        client_kwargs["region_name"] = region
    kwargs.update(aws.s3fs_options(config, route))
    # S3 traffic never goes through a proxy (S3 grants by IAM, not by source address), and
    # botocore would otherwise take HTTP(S)_PROXY from the environment.
    config_kwargs: dict[str, Any] = {"proxies": {}}
    endpoint = route.location.endpoint
    if endpoint is not None:  # the kind of endpoint the URL named, for listings too
        config_kwargs.update(use_fips_endpoint=endpoint.fips,
                             use_dualstack_endpoint=endpoint.dualstack,
                             s3={"use_accelerate_endpoint": endpoint.accelerate})
    if route.requester_pays:
        kwargs["requester_pays"] = True
    return S3FileSystem(client_kwargs=client_kwargs, config_kwargs=config_kwargs, **kwargs,
                        **common)
