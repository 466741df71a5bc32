"""Azure credentials for a Route: ambient (adlfs's own chain, or a shared key from the
environment for emulators) and anonymous."""

from __future__ import annotations

import os
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..rules import Route


def adlfs_options(config: Config | None, route: Route, account: str) -> dict[str, Any]:
    """Keyword arguments for ``AzureBlobFileSystem`` for ``account`` as ``route.grant``."""
    kind = route.grant.kind
    az_cfg = config.platform.azure if config else None
    endpoint = az_cfg.endpoint_url.format(account=account) if az_cfg and az_cfg.endpoint_url else None
    key = None
    if kind == "ambient" and az_cfg is not None and az_cfg.account_key_env:
        key = os.environ.get(az_cfg.account_key_env)
        if not key:
            raise ConfigError(
                f"environment variable {az_cfg.account_key_env} is not set",
                source=config.source, key="platform.azure.account_key_env",
            )
    if kind not in ("ambient", "anonymous"):
        raise NotImplementedError(f"Azure grant {kind!r} is not supported yet")
    if endpoint:
        # An emulator or a private endpoint: a connection string is the only way adlfs
        # accepts a non-https or path-style endpoint.
        scheme = endpoint.split("://", 1)[0]
        parts = [f"DefaultEndpointsProtocol={scheme}", f"AccountName={account}",
                 f"BlobEndpoint={endpoint}"]
        if key:
            parts.append(f"AccountKey={key}")
        return {"connection_string": ";".join(parts) + ";", "account_name": account,
                "anon": key is None}
    opts: dict[str, Any] = {"account_name": account}
    if key:
        opts["account_key"] = key
    if kind == "anonymous":
        opts["anon"] = True
    return opts
