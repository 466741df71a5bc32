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
    if aws_cfg is not None:
        if aws_cfg.endpoint_url:
            kwargs["endpoint_url"] = aws_cfg.endpoint_url
        if aws_cfg.region:
            client_kwargs["region_name"] = aws_cfg.region
    if "region_name" not in client_kwargs and route.location.region:
        client_kwargs["region_name"] = route.location.region
    kwargs.update(aws.s3fs_options(config, route))
    # S3 traffic never goes through a proxy (S3 grants by IAM, not by source address), and
    # botocore would otherwise take HTTP(S)_PROXY from the environment.
    config_kwargs: dict[str, Any] = {"proxies": {}}
    return S3FileSystem(client_kwargs=client_kwargs, config_kwargs=config_kwargs, **kwargs,
                        **common)
