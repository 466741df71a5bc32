"""attachfs: open any attachment URI with the right credentials for the tenant it belongs to.

The public surface is what this module exports (``__all__``); every other module is internal
(``_name``) except the optional ``attachfs.testing``, the local emulators.
"""

from __future__ import annotations

import os
from typing import Any

from ._config import Config, load_config
from ._errors import (
    AccessDenied,
    AccessRefused,
    AttachError,
    ConfigError,
    GaveUp,
    IntegrityError,
    NotFound,
    ReadOnlyError,
    ReadTimeout,
    TooLarge,
)
from ._file import AttachFile
from ._filesystem import AttachFileSystem
from ._limits import Limits
from ._redact import install_log_scrubbing
from ._rules import Grant, Route
from ._types import Backend, GrantKind, Mode
from ._uri import Location

__all__ = [
    "AccessDenied",
    "AccessRefused",
    "AttachError",
    "AttachFile",
    "AttachFileSystem",
    "Backend",
    "Config",
    "ConfigError",
    "GaveUp",
    "Grant",
    "GrantKind",
    "IntegrityError",
    "Limits",
    "Location",
    "Mode",
    "NotFound",
    "ReadOnlyError",
    "ReadTimeout",
    "Route",
    "TooLarge",
    "__version__",
    "explain",
    "filesystem",
    "load_config",
    "open",
]

__version__ = "0.2.0"

# Credential values never reach a log record, whichever library logs them.
install_log_scrubbing()


def filesystem(*, tenant: str | None = None,
               config: str | os.PathLike[str] | dict[str, Any] | Config | None = None,
               **kwargs: Any) -> AttachFileSystem:
    """The ``attach`` filesystem for ``tenant`` under ``config``.

    ``tenant`` defaults to fsspec's configuration for the protocol
    (``fsspec.config.conf["attach"]``, ``FSSPEC_ATTACH_TENANT``), then ``$ATTACHFS_TENANT``.
    ``config`` is a path to a TOML file, a mapping or a ``Config``; it defaults likewise
    (``FSSPEC_ATTACH_CONFIG``, then ``$ATTACHFS_CONFIG``), else ambient mode (each backend's own
    default credentials, no tenant rules). ``kwargs`` are ``AttachFileSystem``'s options
    (``cache``; in ambient mode ``endpoint_url``, ``anon``, ``profile``; fsspec's); an unknown
    one is refused.
    """
    return AttachFileSystem(tenant=tenant, config=config, **kwargs)


def open(uri: str, mode: str = "rb", *, tenant: str | None = None,
         config: str | os.PathLike[str] | dict[str, Any] | Config | None = None,
         **open_kwargs: Any) -> Any:
    """Open one attachment for reading; a file-like object (use it as a context manager).

    ``uri`` is any form attachfs understands (``s3://``, ``gs://``, an Azure blob URL, an
    https URL of any of them, or a plain/signed https URL). ``tenant`` and ``config`` as for
    ``filesystem``; of ``open_kwargs``, the filesystem's options (``cache``, ``anon``, ...) go
    to ``filesystem``, the rest to ``AttachFileSystem.open`` (``block_size``,
    ``cache_options``, ``encoding``, ...); an unknown one is refused. ``mode`` is ``"rb"`` or
    ``"r"`` (text, with ``encoding``); a write mode raises ``ReadOnlyError``. No request is made
    until the first read."""
    from ._options import OPTIONS

    options = {k: open_kwargs.pop(k) for k in list(open_kwargs) if k in OPTIONS}
    return filesystem(tenant=tenant, config=config, **options).open(uri, mode, **open_kwargs)


def explain(uri: str, *, tenant: str | None = None,
            config: str | os.PathLike[str] | dict[str, Any] | Config | None = None) -> Route:
    """The Route a read of ``uri`` would take, without making any request.

    Raises exactly what a read would raise before its first request: ``AccessRefused`` (no or
    unknown tenant, an unclaimed bucket, a refused address), ``ConfigError``, or ``ValueError``
    for a malformed URI. ``tenant`` and ``config`` as for ``filesystem``."""
    from ._net.guard import literal_refusal

    # Tenant and config resolved as every read resolves them (argument, fsspec's conf, the
    # environment), with the config file as it is now.
    fs = filesystem(tenant=tenant, config=config)
    resolved = fs.config
    route = fs.route(uri)
    if route.backend == "http":
        # The network guard's verdict on an IP-literal host needs no I/O: raise it here, as
        # the read would before its first packet (a host name is judged once resolved).
        refusal = literal_refusal(resolved, route.location.url or "")
        if refusal is not None:
            raise refusal
    return route
