"""AWS credentials for a Route: the platform's own identity (default boto chain or a profile)."""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..rules import Route


def s3fs_options(config: Config | None, route: Route) -> dict[str, Any]:
    """Keyword arguments for ``S3FileSystem`` that authenticate as ``route.grant``."""
    kind = route.grant.kind
    aws_cfg = config.platform.aws if config else None
    if kind in ("ambient", "aws-platform"):
        opts: dict[str, Any] = {}
        if aws_cfg is not None and aws_cfg.profile:
            opts["profile"] = aws_cfg.profile
        return opts
    raise NotImplementedError(f"AWS grant {kind!r} is not supported yet")
