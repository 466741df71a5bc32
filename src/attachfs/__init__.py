"""attachfs: open any attachment URI with the right credentials for the tenant it belongs to.

The public surface (DESIGN.md, "Public surface"); everything else is internal.
"""

from __future__ import annotations

import os
from typing import Any

from .config import Config, load_config, resolve_config
from .errors import AccessDenied, AccessRefused, ConfigError, IntegrityError, ReadOnlyError

# Imported before the function ``filesystem`` below is defined: importing the submodule sets the
# package attribute ``filesystem`` to the module, and the function must win.
from .filesystem import AttachFileSystem  # noqa: E402  isort: skip
from .rules import Route
from .uri import Location

__all__ = [
    "AccessDenied",
    "AccessRefused",
    "AttachFileSystem",
    "Config",
    "ConfigError",
    "IntegrityError",
    "Location",
    "ReadOnlyError",
    "Route",
    "explain",
    "filesystem",
    "load_config",
    "open",
]

__version__ = "0.1.0"


def filesystem(*, tenant: str | None = None, config: Any = None, **kwargs: Any):
    """The ``attach`` filesystem for ``tenant`` (default ``$ATTACHFS_TENANT``) under ``config``
    (a path, a mapping or a Config; default ``$ATTACHFS_CONFIG``, else ambient mode)."""
    return AttachFileSystem(tenant=tenant, config=config, **kwargs)


def open(uri: str, mode: str = "rb", *, tenant: str | None = None, config: Any = None,
         **open_kwargs: Any):
    """Open one attachment for reading; a file-like object (use it as a context manager)."""
    return filesystem(tenant=tenant, config=config).open(uri, mode, **open_kwargs)


def explain(uri: str, *, tenant: str | None = None, config: Any = None) -> Route:
    """The Route a read of ``uri`` would take. Makes no request; raises exactly what a read
    would raise before its first request (AccessRefused, ConfigError, ValueError)."""
    from . import rules
    from .uri import parse

    if tenant is None:
        tenant = os.environ.get("ATTACHFS_TENANT") or None
    config = resolve_config(config)
    route = rules.route(config, tenant, parse(uri))
    if route.backend == "http":
        # The network guard's verdict on an IP-literal host needs no I/O: raise it here, as
        # the read would before its first packet (a host name is judged once resolved).
        from .netguard import literal_refusal

        refusal = literal_refusal(config, route.location.url)
        if refusal is not None:
            raise refusal
    return route

