"""The config's data: immutable dataclasses and the read-only mapping they hold.

Pure data with no validation of its own: ``validate`` builds these from a checked mapping, so
every instance met elsewhere has passed the checks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._limits import CACHE_MAX_BYTES
from .._uri import Location


class FrozenMap(Mapping[Any, Any]):
    """A read-only, hashable mapping (``Config.tenants``)."""

    def __init__(self, items: Any = ()):
        self._d: dict[Any, Any] = dict(items)

    def __getitem__(self, key: Any) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        return hash(frozenset(self._d.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._d == dict(other.items())

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"


@dataclass(frozen=True)
class AwsPlatform:
    role_name: str | None = None          # the role every tenant creates (one fixed name for every tenant)
    account_id: str | None = None         # the platform's own account (for `attachfs policy`)
    endpoint_url: str | None = None
    sts_endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    anonymous: bool = False               # unsigned requests for the platform's own reads


@dataclass(frozen=True)
class GcpPlatform:
    credentials: str | None = None        # service-account JSON path, "anonymous", or None (ADC)
    endpoint_url: str | None = None
    iam_endpoint_url: str | None = None
    token_uri: str | None = None          # OAuth token endpoint override (local fakes)


@dataclass(frozen=True)
class AzurePlatform:
    client_id: str | None = None
    client_secret_env: str | None = None
    client_certificate_path: str | None = None
    authority: str | None = None          # default: the Entra ID of the blob URL's cloud
    endpoint_url: str | None = None       # template containing "{account}"
    account_key_env: str | None = None    # shared key, for emulators / ambient reads only
    account: str | None = None            # default storage account for az://container/key
    redirect_uri: str | None = None       # the app's registered redirect URI (admin consent)
    anonymous: bool = False               # ambient reads without credentials (adlfs anon)


@dataclass(frozen=True)
class HttpPlatform:
    proxy: str | None = None
    allow_private_networks: bool = False
    allow_hosts: tuple[str, ...] = ()
    allow_ports: tuple[int, ...] = (80, 443)
    trust_env: bool = False
    max_redirects: int = 5


@dataclass(frozen=True)
class Platform:
    aws: AwsPlatform = AwsPlatform()
    gcp: GcpPlatform = GcpPlatform()
    azure: AzurePlatform = AzurePlatform()
    http: HttpPlatform = HttpPlatform()


@dataclass(frozen=True)
class CacheConfig:
    directory: str
    max_bytes: int = CACHE_MAX_BYTES
    ttl_seconds: float | None = None


@dataclass(frozen=True)
class AwsIntegration:
    account_id: str
    external_id: str = field(repr=False)
    requester_pays: bool = False          # send x-amz-request-payer: the tenant's role pays


@dataclass(frozen=True)
class GcpIntegration:
    service_account: str
    user_project: str | None = None       # the project billed for requester-pays buckets


@dataclass(frozen=True)
class AzureIntegration:
    tenant_id: str


@dataclass(frozen=True)
class Claim:
    """A tenant's claim on a bucket (or a prefix of it) for direct reads."""

    uri: str                 # "s3://bucket" or "gs://bucket/prefix/"
    backend: str
    bucket: str
    prefix: str = ""
    account: str | None = None
    owner: str | None = None  # S3 ExpectedBucketOwner
    requester_pays: bool = False  # S3: send x-amz-request-payer (the platform's account pays)
    user_project: str | None = None  # GCS: the project billed for a requester-pays bucket

    def covers(self, location: Location) -> bool:
        return (location.backend == self.backend and location.bucket == self.bucket
                and location.account == self.account
                and location.key.startswith(self.prefix))


@dataclass(frozen=True)
class Tenant:
    name: str
    aws: AwsIntegration | None = None
    gcp: GcpIntegration | None = None
    azure: AzureIntegration | None = None
    direct: tuple[Claim, ...] = ()


def thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


def freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return FrozenMap((k, freeze(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value
