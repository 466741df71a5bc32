"""Load and validate the attachfs config (TOML file or mapping) into immutable dataclasses.

Pure: reads one file, makes no request. Every mistake is a ``ConfigError`` naming the file, the
dotted key and what to change, because a config that is silently half-read would make reads
with another identity than the one its author meant (the gcsfs-falls-back-to-anonymous failure).

A config names identities, never secrets: secrets are referenced by environment-variable name
(``*_env``) or file path and read later by the credential layer, so a ``Config`` can be logged,
hashed, compared and pickled. A ``Config`` pickles as its file path (or, for a mapping, as the
validated mapping) and is re-validated on unpickling.

Decisions beyond the access rules themselves:

* ``[tenants]`` present but empty is an error (it would silently mean ambient mode).
* A claim is a bucket or a prefix ending in ``/`` (``s3://b/acme`` would also cover
  ``s3://b/acme-other/``). Claims on Azure are refused: without an integration Azure reads are
  anonymous, the platform lends no identity, so there is no confused deputy to guard against.
  ``owner`` pinning is S3-only (``ExpectedBucketOwner``); GCS has no equivalent.
* Requester-pays buckets are read only where the config opts in, because the reader's account
  is billed: ``requester_pays = true`` (S3, ``x-amz-request-payer``) or ``user_project = "p"``
  (GCS, the project billed), on a claim or on the tenant's integration.
* ``service_account`` must be a Google service-account email,
  ``name@<domain>.gserviceaccount.com`` (``iam.``, ``developer.``, ``appspot.`` ... domains).
* GCP has no ``scopes`` key: impersonation is always read-only (``devstorage.read_only``).
* The platform's AWS identity is ``profile`` or boto's default chain (``AWS_*`` environment
  variables, instance roles); there are no key fields, not even ``*_env`` ones.
* URLs in the config never carry ``user:password@``: proxy authentication is not supported.
* A file is bounded before it is parsed (size, nesting, dotted-key parts: ``MAX_*``), and a
  mapping in nesting; a key file's content where its path belongs is refused unrepeated.
* ``allow_hosts`` entries are each an address, a network, a name or a suffix (``allow_entry``);
  one that can never match is refused, naming it.
* Two tenants may not share an external ID, a service account or a directory; they may share
  an AWS account with different external IDs (``_refuse_shared_identities``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigError
from .._limits import Limits
from .hosts import allow_entry
from .model import (
    AwsIntegration,
    AwsPlatform,
    AzureIntegration,
    AzurePlatform,
    CacheConfig,
    Claim,
    FrozenMap,
    GcpIntegration,
    GcpPlatform,
    HttpPlatform,
    Platform,
    Tenant,
    freeze,
    thaw,
)
from .reading import check_depth, read_toml
from .validate import validate

__all__ = [
    "AwsIntegration", "AwsPlatform", "AzureIntegration", "AzurePlatform", "CacheConfig", "Claim",
    "Config", "FrozenMap", "GcpIntegration", "GcpPlatform", "HttpPlatform", "Platform", "Tenant",
    "allow_entry", "load_config", "resolve_config",
]

ENV_VAR = "ATTACHFS_CONFIG"


@dataclass(frozen=True)
class Config:
    source: str | None
    platform: Platform
    tenants: FrozenMap
    cache: CacheConfig | None = None
    limits: Limits = Limits()
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def multi_tenant(self) -> bool:
        return bool(self.tenants)

    @functools.cached_property
    def digest(self) -> str:
        """A short content hash (distinguishes configs in fsspec's instance cache, and keys the
        credential leases: computed once, it is asked for on every request)."""
        text = json.dumps(thaw(self.raw), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def as_mapping(self) -> dict[str, Any]:
        """The validated config as a plain mapping (it holds no secrets: those are named by
        environment variable or file, never inline); ``load_config`` of it gives this config
        back, with relative paths already resolved."""
        mapping: dict[str, Any] = thaw(self.raw)
        return mapping

    @classmethod
    def from_env(cls) -> Config | None:
        return resolve_config(None)

    def __repr__(self) -> str:
        return (f"Config(source={self.source!r}, tenants={sorted(self.tenants)!r}, "
                f"digest={self.digest!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        if self.source is not None:
            return load_config, (self.source,)
        return load_config, (thaw(self.raw),)


# ---------------------------------------------------------------- loading

def load_config(config: str | os.PathLike[str] | Mapping[str, Any] | Config) -> Config:
    """Load and validate a config from a TOML file path, a mapping, or return a ``Config``."""
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        check_depth(config, None)
        return _build(thaw(config), None)
    if isinstance(config, (str, os.PathLike)):
        path = os.path.abspath(os.path.expanduser(os.fspath(config)))
        try:
            st = os.stat(path)
        except OSError as err:
            raise ConfigError(f"cannot read the config file ({err.strerror})", source=path) from err
        return _load_file(path, (st.st_mtime_ns, st.st_size, st.st_ino))
    raise TypeError(f"config must be a path, a mapping or a Config, not {type(config).__name__}")


def resolve_config(config: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
                   ) -> Config | None:
    """``config`` if given, else ``$ATTACHFS_CONFIG`` if set, else None (ambient mode)."""
    if config is not None:
        return load_config(config)
    path = os.environ.get(ENV_VAR)
    if not path:
        return None
    if not os.path.isfile(os.path.expanduser(path)):
        raise ConfigError(f"${ENV_VAR} names a file that does not exist: fix or unset it",
                          source=path)
    return load_config(path)


@functools.lru_cache(maxsize=32)
def _load_file(path: str, _stamp: tuple[int, int, int]) -> Config:
    return _build(read_toml(path, _stamp[1]), path)


def _build(data: dict[str, Any], src: str | None) -> Config:
    parts = validate(data, src)  # first: it writes relative paths in ``data`` as absolute ones
    return Config(source=src, raw=freeze(data), **parts._asdict())
